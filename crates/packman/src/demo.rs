//! `packman demo`: the whole trust story on loopback in a few seconds. A publisher signs a
//! small repository (TAP 15 hashed bins, consistent snapshots), a built-in server on
//! 127.0.0.1 plays the untrusted mirror, and the client downloads a verified package; then
//! the mirror turns malicious twice and is refused both times.

use std::path::PathBuf;

use packman_client::{Config, Updater};
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_tuf::OffsetDateTime;

use crate::report::{explain, print_trusted};

#[derive(clap::Args)]
pub struct Args {
    /// Keep the repository, client state and downloads in this directory (default: a
    /// temporary directory removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const PACKAGES: [(&str, &str); 3] = [
    ("packages/hello/hello-1.0.tar.gz", "hello 1.0: the first release\n"),
    ("packages/hello/hello-1.1.tar.gz", "hello 1.1: a better release\n"),
    ("packages/world/world-0.3.tar.gz", "world 0.3\n"),
];

pub fn run(a: Args) -> Result<(), String> {
    let tmp;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let repo_dir = dir.join("repository");
    if repo_dir.exists() {
        return Err(format!(
            "{} already holds a demo repository (its keys are gone): remove it or choose another --dir",
            dir.display()
        ));
    }
    let client_dir = dir.join("client-metadata");
    let downloads = dir.join("downloads");
    let now = OffsetDateTime::now_utc();

    println!("== publisher: signing a repository in {}", repo_dir.display());
    let mut repo = RepoBuilder::new(now).and_then(|r| r.with_succinct_bins(4)).map_err(|e| e.to_string())?;
    for (path, body) in PACKAGES {
        let bin = repo.add_target(path, body.as_bytes()).map_err(|e| e.to_string())?;
        println!("   {path} -> {bin}");
    }
    repo.publish(&repo_dir).map_err(|e| e.to_string())?;
    let old_timestamp = std::fs::read(repo_dir.join("metadata/timestamp.json")).map_err(|e| e.to_string())?;
    // A second release, so that the mirror has an older timestamp to replay later.
    repo.add_target("packages/world/world-0.4.tar.gz", b"world 0.4\n").map_err(|e| e.to_string())?;
    repo.publish(&repo_dir).map_err(|e| e.to_string())?;

    let server = TestServer::serve_dir(&repo_dir).map_err(|e| format!("starting the loopback server: {e}"))?;
    let metadata_url = format!("{}/metadata/", server.url());
    let targets_url = format!("{}/targets/", server.url());
    println!("== mirror: serving it at {} (untrusted)", server.url());

    println!("== client: trusting root v1 from the publisher, then updating from the mirror");
    let root = std::fs::read(repo_dir.join("metadata/1.root.json")).map_err(|e| e.to_string())?;
    Updater::bootstrap(&client_dir, &root).map_err(|e| explain(&e))?;
    let target = PACKAGES[1].0;
    {
        let mut up =
            Updater::new(&client_dir, &metadata_url, Some(&targets_url), Config::default()).map_err(|e| explain(&e))?;
        up.refresh().map_err(|e| explain(&e))?;
        print_trusted(&up);
        let info = up.get_target_info(target).map_err(|e| explain(&e))?.ok_or("demo target missing")?;
        let path = downloads.join(target.rsplit('/').next().unwrap_or(target));
        up.download_target_to(&path, target, &info).map_err(|e| explain(&e))?;
        println!(
            "   {target}: {} bytes, sha256 {} verified -> {}",
            info.length,
            info.hashes.get("sha256").unwrap_or_default(),
            path.display()
        );
    }

    println!("== the mirror turns malicious");
    let trusted_before = packman_testkit::dir_state(&client_dir);
    // The mirror swaps the package's bytes (consistent snapshots: dir/SHA256.name).
    let (subdir, file) = target.rsplit_once('/').unwrap_or(("", target));
    let url_path = format!("/targets/{subdir}/{}.{file}", hash_of(&repo, target));
    server.set(&url_path, Behavior::Body(b"malware".to_vec()));
    let attack_dir = dir.join("attack-downloads");
    {
        let mut up =
            Updater::new(&client_dir, &metadata_url, Some(&targets_url), Config::default()).map_err(|e| explain(&e))?;
        let info = up.get_target_info(target).map_err(|e| explain(&e))?.ok_or("demo target missing")?;
        match up.download_target(&attack_dir, target, &info) {
            Err(e) => println!("   tampered package: refused: {e}"),
            Ok(_) => return Err("the client accepted a tampered package".into()),
        }
    }
    server.reset();
    server.set("/metadata/timestamp.json", Behavior::Body(old_timestamp));
    {
        let mut up =
            Updater::new(&client_dir, &metadata_url, Some(&targets_url), Config::default()).map_err(|e| explain(&e))?;
        match up.refresh() {
            Err(e) => println!("   replayed old timestamp: refused: {e}"),
            Ok(_) => return Err("the client accepted a rolled-back timestamp".into()),
        }
    }
    if packman_testkit::dir_state(&client_dir) != trusted_before {
        return Err("trusted metadata changed during the attacks".into());
    }
    println!("== done: one verified download, two attacks refused, trusted metadata byte-for-byte unchanged");
    Ok(())
}

fn hash_of(repo: &RepoBuilder, target: &str) -> String {
    let data = &repo.target_data[target];
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}
