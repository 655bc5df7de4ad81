//! `packman-bench`: publisher benchmarks (driven by `benches/publisher_bench.py`, documented
//! in `benches/README.md`).
//!
//! - `build-1m DIR [--targets N] [--bins B]`: creates a repository in DIR with B succinct
//!   hashed bins, lists N synthetic targets (no files: `add_target_info`) and publishes them
//!   in one batch. Prints each phase's time, the total, and peak RSS (VmHWM).
//! - `profile DIR [--write-test]`: on a built repository, times the pieces of re-signing
//!   every bin, in memory: reading, canonical JSON, signing, the snapshot.
//! - `profile-add DIR FILE`: one `packman repo add --raw`-like publish, phase by phase, then
//!   the snapshot's share of it: parse, canonical JSON, ed25519 vs ecdsa-p256 signature,
//!   durable writes, key loading.
//!
//! Keys are unencrypted: the passphrase callback fails if it is ever asked.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use packman_repo::keys::KeyFile;
use packman_repo::{Error as RepoError, InitOptions, PreparedTarget, Repository};

/// The bench's errors: packman-repo's, and its own checks (a message).
type Error = Box<dyn std::error::Error + Send + Sync>;

fn invalid(msg: impl std::fmt::Display) -> Error {
    msg.to_string().into()
}
use packman_tuf::{OffsetDateTime, TargetFile};

#[derive(Parser)]
#[command(name = "packman-bench", about = "packman publisher benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Init a repository in DIR, list N synthetic targets, publish once.
    #[command(name = "build-1m")]
    Build1m {
        dir: PathBuf,
        /// Number of targets.
        #[arg(long, default_value_t = 1_000_000)]
        targets: u64,
        /// Number of hashed bins (a power of two).
        #[arg(long, default_value_t = 16384)]
        bins: u64,
        /// Also print a one-line JSON summary (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Time the parts of re-signing every bin of DIR, in memory (nothing is written).
    Profile {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also write every bin's canonical JSON to a scratch directory (plain writes, no
        /// fsync) and delete it. Deleting 16384 files slows file creation on this disk for
        /// minutes after (ext4 without a journal skips recently freed inodes).
        #[arg(long)]
        write_test: bool,
    },
    /// `packman repo add DIR --raw FILE`, phase by phase (this one publishes), then the
    /// snapshot's share of it in memory: parse, canonical JSON, signature, durable write.
    ProfileAdd {
        dir: PathBuf,
        file: PathBuf,
        /// Target path prefix (the file name is appended).
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

fn no_passphrase(kf: &KeyFile) -> Result<String, RepoError> {
    // Benchmark keys are unencrypted.
    Err(RepoError::NoPassphrase { path: kf.path.clone() })
}

/// Peak resident set size of this process, in KiB (VmHWM), if /proc tells.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident set size in KiB (VmRSS).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Target `i`: a PyPI-like path (700,000 projects, some with two releases) and a
/// description with a plausible length and the sha256/sha512 of the path bytes.
fn synthetic(i: u64) -> (String, TargetFile) {
    let project = i % 700_000;
    let path = format!("packages/project{project}/project{i}-1.0.tar.gz");
    let mut tf = packman_tuf::target::describe(path.as_bytes());
    // 2 KiB .. ~50 MiB, spread deterministically.
    tf.length = 2048 + (i.wrapping_mul(2_654_435_761) % 50_000_000);
    (path, tf)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn build(dir: &Path, n: u64, bins: u64, json: bool) -> Result<(), Error> {
    let t0 = Instant::now();
    let now = OffsetDateTime::now_utc();
    let opts = InitOptions { bins, passphrase: None, ..InitOptions::default() };
    let mut init = Duration::ZERO;
    let mut generate = Duration::ZERO;
    let mut add = Duration::ZERO;
    let mut rss_before_publish = None;
    let mut publish_start = Instant::now();
    // The targets are listed before the first publish, so each bin is written once.
    let mut repo = Repository::init_with(dir, &opts, now, |repo| {
        init = t0.elapsed();
        // As a bulk import would: two threads make the input in chunks (here: synthesise
        // each entry) and prepare it for listing (`Repository::prepare_target`: check the
        // path, hash it, convert the description), while this thread lists what they send
        // (`add_prepared`). `generate` is the two threads' busy time, `add` this thread's
        // time from the first chunk to the last.
        const CHUNK: u64 = 8192;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<PreparedTarget>, RepoError>>(4);
        std::thread::scope(|s| {
            let producers: Vec<_> = (0..2u64)
                .map(|k| {
                    let tx = tx.clone();
                    s.spawn(move || {
                        let mut busy = Duration::ZERO;
                        let mut i = k * CHUNK;
                        while i < n {
                            let end = (i + CHUNK).min(n);
                            let t = Instant::now();
                            let chunk = (i..end)
                                .map(|j| {
                                    let (path, tf) = synthetic(j);
                                    Repository::prepare_target(&path, tf)
                                })
                                .collect();
                            busy += t.elapsed();
                            if tx.send(chunk).is_err() {
                                break;
                            }
                            i += 2 * CHUNK;
                        }
                        busy
                    })
                })
                .collect();
            drop(tx);
            let t = Instant::now();
            for chunk in rx {
                for p in chunk? {
                    repo.add_prepared(p)?;
                }
            }
            add = t.elapsed();
            generate = producers.into_iter().map(|p| p.join().expect("generator thread")).sum();
            Ok::<(), RepoError>(())
        })?;
        rss_before_publish = rss_kib();
        publish_start = Instant::now();
        Ok(())
    })?;
    let publish = publish_start.elapsed();
    let t = Instant::now();
    let snapshot_version = repo.snapshot().version;
    let written = repo.snapshot().meta.len() + 2;
    // As the CLI does when a command ends: the process exit frees it all at once.
    std::mem::forget(repo);
    let drop_t = t.elapsed();
    let total = t0.elapsed();
    let peak = peak_rss_kib();
    let snapshot_bytes = std::fs::metadata(dir.join("metadata").join(format!("{snapshot_version}.snapshot.json")))
        .map(|m| m.len())
        .unwrap_or(0);

    println!("packman-bench build-1m: {n} targets in {bins} bins, {}", dir.display());
    println!("  init (keys, root):                   {:8.3} s", secs(init));
    println!("  generate + prepare (2 threads, busy): {:8.3} s", secs(generate));
    println!("  add_prepared x {n:<10} (overlapping): {:8.3} s", secs(add));
    println!("  publish ({written} metadata files):       {:8.3} s", secs(publish));
    println!("  drop (skipped: left to process exit): {:8.3} s", secs(drop_t));
    println!("elapsed: {:.3} s", secs(total));
    match peak {
        Some(k) => println!("peak RSS: {:.1} MiB", k as f64 / 1024.0),
        None => println!("peak RSS: unknown (no /proc/self/status)"),
    }
    println!("snapshot: {snapshot_bytes} bytes (version {snapshot_version})");
    if json {
        let j = serde_json::json!({
            "targets": n,
            "bins": bins,
            "init_s": secs(init),
            "generate_s": secs(generate),
            "add_s": secs(add),
            "publish_s": secs(publish),
            "drop_s": secs(drop_t),
            "elapsed_s": secs(total),
            "peak_rss_kib": peak,
            "rss_before_publish_kib": rss_before_publish,
            "metadata_written": written,
            "snapshot_bytes": snapshot_bytes,
        });
        println!("{j}");
    }
    Ok(())
}

/// Re-does in memory what a publish of every bin does, phase by phase.
fn profile(dir: &Path, json: bool, write_test: bool) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let t = Instant::now();
    let mut repo = Repository::open(dir, None, now)?;
    let open = t.elapsed();
    let sr = repo
        .targets
        .delegations
        .as_ref()
        .and_then(|d| d.succinct_roles.clone())
        .ok_or_else(|| invalid("not a succinct-bins repository"))?;
    let keydir = repo.key_dir();
    let signers = keydir.signers_for(&sr.keyids, &mut no_passphrase)?;
    let signer = signers.first().ok_or_else(|| invalid("no bins key"))?;

    let names: Vec<u64> = (0..sr.bin_count()).collect();
    let t = Instant::now();
    let mut entries = 0usize;
    for name in &names {
        entries += repo.bin(*name)?.len();
    }
    let read = t.elapsed();
    let rss_loaded = rss_kib();

    let mut canon_t = Duration::ZERO;
    let mut sign_t = Duration::ZERO;
    let mut env_t = Duration::ZERO;
    let mut bytes_total = 0usize;
    for name in &names {
        let bin = repo.bin(*name)?;
        let t = Instant::now();
        let canon = bin.fast_canonical().ok_or_else(|| invalid("a bin of unusual shape"))?;
        canon_t += t.elapsed();
        let t = Instant::now();
        let sig = signer.sign(&canon).map_err(invalid)?;
        sign_t += t.elapsed();
        let t = Instant::now();
        let env = packman_repo::envelope_bytes(&canon, &[sig])?;
        env_t += t.elapsed();
        bytes_total += env.len();
    }
    let t = Instant::now();
    let snap = packman_tuf::canonical::to_canonical(repo.snapshot()).map_err(invalid)?;
    let snap_canon = t.elapsed();
    let (canon_and_write, rm) = if write_test {
        let t = Instant::now();
        let tmp = tempfile::tempdir_in(dir).map_err(invalid)?;
        for (k, name) in names.iter().enumerate() {
            let canon = repo.bin(*name)?.fast_canonical().ok_or_else(|| invalid("unusual bin"))?;
            std::fs::write(tmp.path().join(format!("{k}.json")), &canon).map_err(invalid)?;
        }
        let written = secs(t.elapsed());
        let t = Instant::now();
        drop(tmp);
        (Some(written), Some(secs(t.elapsed())))
    } else {
        (None, None)
    };

    println!("packman-bench profile: {} bins, {entries} targets, {}", names.len(), dir.display());
    println!("  open repository:                     {:8.3} s", secs(open));
    println!("  read + parse every bin:              {:8.3} s", secs(read));
    println!(
        "  canonical JSON of every bin:         {:8.3} s  ({:.1} MiB)",
        secs(canon_t),
        bytes_total as f64 / 1048576.0
    );
    println!("  ed25519 signatures:                  {:8.3} s", secs(sign_t));
    println!("  envelopes:                           {:8.3} s", secs(env_t));
    println!("  canonical snapshot:                  {:8.3} s  ({} bytes)", secs(snap_canon), snap.len());
    if let (Some(w), Some(r)) = (canon_and_write, rm) {
        println!("  canonical + plain write (no fsync):  {w:8.3} s");
        println!("  remove those files:                  {r:8.3} s");
    }
    println!("  RSS with every bin loaded: {:.1} MiB", rss_loaded.unwrap_or(0) as f64 / 1024.0);
    if json {
        let j = serde_json::json!({
            "open_s": secs(open), "read_s": secs(read), "canonical_s": secs(canon_t), "sign_s": secs(sign_t),
            "envelope_s": secs(env_t), "snapshot_canonical_s": secs(snap_canon),
            "canonical_and_write_s": canon_and_write, "remove_s": rm,
            "rss_loaded_kib": rss_loaded, "peak_rss_kib": peak_rss_kib(),
        });
        println!("{j}");
    }
    Ok(())
}

/// Median of `reps` runs of `f`, in seconds.
fn median_of<E>(reps: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, Error>
where
    Error: From<E>,
{
    let mut xs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        xs.push(secs(t.elapsed()));
    }
    xs.sort_by(f64::total_cmp);
    Ok(xs[xs.len() / 2])
}

fn ms(x: f64) -> String {
    format!("{:7.2} ms", x * 1000.0)
}

fn profile_add(dir: &Path, file: &Path, prefix: &str) -> Result<(), Error> {
    let t_all = Instant::now();
    let now = OffsetDateTime::now_utc();
    let t = Instant::now();
    let mut repo = Repository::open(dir, None, now)?;
    let open = secs(t.elapsed());
    let name = file.file_name().and_then(|n| n.to_str()).ok_or_else(|| invalid("not a file name"))?;
    let t = Instant::now();
    let bin = repo.add_target(&format!("{prefix}{name}"), file, None)?;
    let add = secs(t.elapsed());
    let t = Instant::now();
    let report = repo.publish(&mut no_passphrase)?;
    let publish = secs(t.elapsed());
    let t = Instant::now();
    drop(repo);
    let close = secs(t.elapsed());
    let total = secs(t_all.elapsed());
    println!("packman-bench profile-add: {name} -> {bin}; wrote {}", report.metadata_written.join(", "));
    println!("  Repository::open (root, timestamp, snapshot, targets): {}", ms(open));
    println!("  add_target (hash file, read its bin):                  {}", ms(add));
    println!("  publish:                                               {}", ms(publish));
    println!("  drop:                                                  {}", ms(close));
    println!("  total in-process:                                      {}", ms(total));

    // The snapshot's share, in memory, median of 9.
    let md = dir.join("metadata");
    let mut repo = Repository::open(dir, None, now)?;
    let snap_path = md.join(format!("{}.snapshot.json", repo.snapshot().version));
    let bytes = std::fs::read(&snap_path).map_err(invalid)?;
    let keydir = repo.key_dir();
    let snap_ids = repo.root.roles["snapshot"].keyids.clone();
    let mut all_ids: Vec<String> = repo.root.keys.keys().cloned().collect();
    all_ids.extend(
        repo.targets.delegations.as_ref().map(|d| d.keys.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
    );
    let signer = keydir.signers_for(&snap_ids, &mut no_passphrase)?.pop().ok_or_else(|| invalid("no snapshot key"))?;
    let reps = 9;
    let read = median_of(reps, || std::fs::read(&snap_path).map(drop).map_err(invalid))?;
    let parse = median_of(reps, || {
        serde_json::from_slice::<packman_tuf::Envelope<packman_tuf::Snapshot>>(&bytes).map(drop).map_err(invalid)
    })?;
    let fast_canon_t =
        median_of(reps, || packman_tuf::canonical::snapshot_forms(repo.snapshot()).map(drop).map_err(invalid))?;
    let canon = packman_tuf::canonical::to_canonical(repo.snapshot()).map_err(invalid)?;
    let canon_t = median_of(reps, || packman_tuf::canonical::to_canonical(repo.snapshot()).map(drop).map_err(invalid))?;
    let sign_t = median_of(reps, || signer.sign(&canon).map(drop).map_err(invalid))?;
    let (ecdsa, _) = packman_tuf::crypto::Signer::generate_ecdsa_p256().map_err(invalid)?;
    let ecdsa_t = median_of(reps, || ecdsa.sign(&canon).map(drop).map_err(invalid))?;
    let small = &canon[..600];
    let sign_small_t = median_of(reps, || signer.sign(small).map(drop).map_err(invalid))?;
    let ecdsa_small_t = median_of(reps, || ecdsa.sign(small).map(drop).map_err(invalid))?;
    let sha256_t = median_of(reps, || {
        std::hint::black_box(hashes_len(&canon));
        Ok::<(), Error>(())
    })?;
    let scratch = tempfile::tempdir_in(&md).map_err(invalid)?;
    let mut k = 0;
    let write_t = median_of(reps, || {
        k += 1;
        packman_repo::write_atomic(&scratch.path().join(format!("{k}.json")), &bytes)
    })?;
    let small_write_t = median_of(reps, || {
        k += 1;
        packman_repo::write_atomic(&scratch.path().join(format!("{k}.json")), &bytes[..600])
    })?;
    let dir_sync_t = median_of(reps, || packman_repo::sync_dir(&md))?;
    let keys_t = median_of(reps, || keydir.signers_for(&all_ids, &mut no_passphrase).map(drop))?;
    println!("snapshot ({} bytes, {} entries), median of {reps}:", bytes.len(), repo.snapshot().meta.len());
    println!("  read file:                    {}", ms(read));
    println!("  parse (serde_json, Envelope): {}", ms(parse));
    println!("  canonical JSON:               {}", ms(canon_t));
    println!("  canonical JSON (snapshot_forms): {}", ms(fast_canon_t));
    println!("  ed25519 signature:            {}", ms(sign_t));
    println!("  ecdsa-p256 signature instead: {}", ms(ecdsa_t));
    println!("  (sha256+sha512 of the canonical bytes, target_file: {})", ms(sha256_t));
    println!("  signature of 600 bytes: ed25519 {}, ecdsa-p256 {}", ms(sign_small_t), ms(ecdsa_small_t));
    println!("  write_atomic (fsync):         {}", ms(write_t));
    println!("  write_atomic of 600 bytes:    {}", ms(small_write_t));
    println!("  fsync of metadata/:           {}", ms(dir_sync_t));
    println!("  load every signing key:       {}", ms(keys_t));
    Ok(())
}

/// sha256 and sha512 of `data` (packman_repo::target_file, i.e. ring), for scale.
fn hashes_len(data: &[u8]) -> u64 {
    packman_tuf::target::describe(data).length
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Build1m { dir, targets, bins, json } => build(&dir, targets, bins, json),
        Command::Profile { dir, json, write_test } => profile(&dir, json, write_test),
        Command::ProfileAdd { dir, file, prefix } => profile_add(&dir, &file, &prefix),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("packman-bench: error: {e}");
            ExitCode::from(1)
        }
    }
}
