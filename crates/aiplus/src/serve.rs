#[derive(clap::Args, Debug)]
pub struct ServeArgs {}
pub fn run(_: ServeArgs) -> anyhow::Result<()> { Ok(()) }
