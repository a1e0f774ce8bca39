//! The gateway's view of the compute network: where a deployment's cluster is and what a kWh
//! costs there now (tariff × PUE plus carbon at the scheduler's carbon price).

use std::sync::{Arc, RwLock};

use compute::Network;

pub struct NetworkSites {
    net: RwLock<Arc<Network>>,
    carbon_cny_per_kg: f64,
}

impl NetworkSites {
    pub fn new(net: Arc<Network>, carbon_cny_per_kg: f64) -> Self {
        Self { net: RwLock::new(net), carbon_cny_per_kg }
    }

    /// Keeps the view in step with the compute service's network until `stop`: a cluster
    /// registered through the API is a known place for tenants' regions as soon as it is stored.
    pub fn follow(self: &Arc<Self>, svc: Arc<jobs::ComputeService>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let me = self.clone();
        let mut changes = svc.watch_network();
        tokio::spawn(async move {
            loop {
                let net = changes.borrow_and_update().clone();
                if let Ok(mut g) = me.net.write() {
                    *g = net;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

impl gateway::Sites for NetworkSites {
    fn site(&self, cluster: &str, now_ms: i64) -> Option<gateway::Site> {
        let net = self.net.read().ok()?.clone();
        let c = net.clusters.iter().find(|c| c.id == cluster)?;
        let hub = net.spec.hubs.get(c.hub)?.id.clone();
        let energy = c.tariff.price_at(now_ms.div_euclid(1000)) * c.pue;
        let carbon = c.effective_carbon_kg_per_kwh * c.pue * self.carbon_cny_per_kg;
        Some(gateway::Site { hub, province: c.province.clone(), cost_cny_per_kwh: energy + carbon })
    }
}

#[cfg(test)]
mod tests {
    use gateway::Sites;

    use super::*;

    #[test]
    fn over_a_day_western_sites_cost_less_than_eastern_ones() {
        let sites = NetworkSites::new(Arc::new(compute::file::builtin_network().unwrap()), 0.1);
        let net = sites.net.read().unwrap().clone();
        // The mean over the 24 hours of a day, per side of the network.
        let mean = |side: compute::network::Side| {
            let costs: Vec<f64> = net
                .clusters
                .iter()
                .filter(|c| net.spec.hubs[c.hub].side == side)
                .flat_map(|c| (0..24).map(|h| sites.site(&c.id, h * 3_600_000).unwrap().cost_cny_per_kwh))
                .collect();
            costs.iter().sum::<f64>() / costs.len() as f64
        };
        let (east, west) = (mean(compute::network::Side::East), mean(compute::network::Side::West));
        assert!(west < east, "west {west} < east {east} yuan per kWh");
        assert!(sites.site("no-such-cluster", 0).is_none());
    }
}
