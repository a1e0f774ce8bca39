//! One module per page (or group of pages). Handlers are thin: they check who may see what,
//! ask the domain services, and render.

pub mod agents;
pub mod cluster;
pub mod data;
pub mod eval;
pub mod govern;
pub mod jobs;
pub mod log;
pub mod models;
pub mod network;
pub mod oss;
pub mod playground;
pub mod session;
pub mod sim;
pub mod targets;
pub mod tenants;
