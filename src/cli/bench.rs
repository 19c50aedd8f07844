pub async fn store(_a: StoreBenchArgs) -> anyhow::Result<()> { Ok(()) }
#[derive(Debug, clap::Args)] pub struct StoreBenchArgs {}
