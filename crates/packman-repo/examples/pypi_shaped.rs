//! Writes a PyPI-shaped repository for benchmarks: `2^BITS` succinct hashed bins holding
//! N small targets. Usage: `cargo run --release -p packman-repo --example pypi_shaped -- DIR [BITS] [N]`
use packman_repo::RepoBuilder;
use packman_tuf::OffsetDateTime;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: pypi_shaped DIR [BITS] [N]"));
    let bits: u32 = args.next().map(|s| s.parse().expect("BITS")).unwrap_or(14);
    let n: usize = args.next().map(|s| s.parse().expect("N")).unwrap_or(5000);
    let t = std::time::Instant::now();
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(bits).unwrap();
    for i in 0..n {
        let p = format!("packages/project{i}/project{i}-1.0.tar.gz");
        repo.add_target(&p, p.as_bytes()).unwrap();
    }
    repo.publish(&dir).unwrap();
    eprintln!("{} bins, {n} targets in {:.2?}", 1u64 << bits, t.elapsed());
}
