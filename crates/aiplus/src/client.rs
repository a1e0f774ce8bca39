#[derive(clap::Args, Debug)]
pub struct HubsArgs {}
#[derive(clap::Args, Debug)]
pub struct ClustersArgs {}
#[derive(clap::Args, Debug)]
pub struct JobsArgs {}
pub fn hubs(_: HubsArgs) -> anyhow::Result<()> { Ok(()) }
pub fn clusters(_: ClustersArgs) -> anyhow::Result<()> { Ok(()) }
pub fn jobs(_: JobsArgs) -> anyhow::Result<()> { Ok(()) }
