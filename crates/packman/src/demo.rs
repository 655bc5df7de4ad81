//! `packman demo`: the whole loop on loopback in a few seconds. A publisher creates a
//! repository and adds three real (tiny, installable) wheels, one depending on another;
//! `packman serve` serves it on 127.0.0.1; packman's client downloads a wheel verified against
//! the signed metadata; the user trusts the repository (`packman trust add`) and pip installs
//! the app and its dependency through packman's verifying proxy and runs it; then a second,
//! malicious mirror of the same files is refused three times (a tampered wheel, a replayed
//! timestamp, and, through the proxy, a wheel swapped together with its page).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;

use packman_client::{Config, Updater};
use packman_proxy::{Options as ProxyOptions, Proxy, Running};
use packman_repo::{python, InitOptions, Repository};
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

/// (project, version, requirement, module source)
const WHEELS: [(&str, &str, Option<&str>, &str); 3] = [
    ("demo-greeting", "1.0", None, "def greeting(name):\n    return f\"hello, {name}\"\n"),
    (
        "demo-greeting",
        "1.1",
        None,
        "def greeting(name):\n    return f\"Hello, {name}: installed by pip from a packman index.\"\n",
    ),
    (
        "demo-app",
        "1.0",
        Some("demo-greeting>=1.1"),
        "from demo_greeting import greeting\n\n\ndef main():\n    print(greeting(\"world\"))\n",
    ),
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
        return Err(format!("{} already holds a demo repository: remove it or choose another --dir", dir.display()));
    }
    let wheel_dir = dir.join("wheels");
    std::fs::create_dir_all(&wheel_dir).map_err(|e| format!("{}: {e}", wheel_dir.display()))?;
    let mut wheels = Vec::new();
    for (project, version, requires, source) in WHEELS {
        wheels.push(write_wheel(&wheel_dir, project, version, requires, source)?);
    }

    println!("== publisher: packman repo init + add, in {}", repo_dir.display());
    let opts = InitOptions { bins: 16, keys: Some(dir.join("keys")), ..InitOptions::default() };
    let now = OffsetDateTime::now_utc();
    let mut no_passphrase = |_: &packman_repo::keys::KeyFile| -> Result<String, packman_repo::Error> {
        unreachable!("demo keys are not encrypted")
    };
    Repository::init(&repo_dir, &opts, now).map_err(|e| e.to_string())?;
    // Two releases, so that a mirror has an older timestamp to replay later.
    let mut old_timestamp = Vec::new();
    for batch in [&wheels[..1], &wheels[1..]] {
        let mut repo = Repository::open(&repo_dir, None, now).map_err(|e| e.to_string())?;
        let mut pages = python::Pages::default();
        for w in batch {
            let added = python::add_distribution(&mut repo, &mut pages, w).map_err(|e| e.to_string())?;
            println!("   {} {} -> {} ({})", added.project, added.version, added.path, added.bin);
        }
        pages.stage(&mut repo).map_err(|e| e.to_string())?;
        let report = repo.publish(&mut no_passphrase).map_err(|e| e.to_string())?;
        println!("   signed and published {} metadata file(s)", report.metadata_written.len());
        if old_timestamp.is_empty() {
            old_timestamp = read(&repo_dir.join("metadata/timestamp.json"))?;
        }
    }

    // `packman serve`, in-process on a free loopback port.
    let root = packman_server::check_root(&repo_dir).map_err(|e| e.to_string())?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("127.0.0.1:0: {e}"))?;
    let server = packman_server::Background::start(
        listener,
        packman_server::Config::new(root),
        packman_server::AccessLog::off(),
    )
    .map_err(|e| e.to_string())?;
    let base = format!("http://{}", server.addr());
    println!("== packman serve: {base}/  (TUF metadata under /metadata/, simple index at /simple/)");

    println!("== packman client: trusting root v1 from the publisher, verifying everything else");
    let client_dir = dir.join("client-metadata");
    let root = read(&repo_dir.join("metadata/1.root.json"))?;
    Updater::bootstrap(&client_dir, &root).map_err(|e| explain(&e))?;
    let app_wheel = wheels[2].file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let target = python::package_path("demo-app", &app_wheel);
    let metadata_url = format!("{base}/metadata/");
    let targets_url = format!("{base}/targets/");
    {
        let mut up =
            Updater::new(&client_dir, &metadata_url, Some(&targets_url), Config::default()).map_err(|e| explain(&e))?;
        up.refresh().map_err(|e| explain(&e))?;
        print_trusted(&up);
        let info = up.get_target_info(&target).map_err(|e| explain(&e))?.ok_or("demo target missing")?;
        let path = dir.join("downloads").join(&app_wheel);
        up.download_target_to(&path, &target, &info).map_err(|e| explain(&e))?;
        println!(
            "   {target}: {} bytes, sha256 {} verified -> {}",
            info.length,
            info.hashes.get("sha256").unwrap_or_default(),
            path.display()
        );
    }

    println!("== the user's side: a trust ring and packman's verifying proxy for pip");
    let home = packman_trust::Home::at(dir.join("home"));
    let root_file = repo_dir.join("metadata/1.root.json");
    let (proxy, running) = trust_and_proxy(&home, &format!("{base}/"), &root_file)?;
    let index = running.index_url();
    println!("   $ packman proxy  ->  {index}\n== pip: pip install --index-url {index} demo-app");
    if pip_install(&dir.join("site"), &index, false)?.is_some() {
        for s in proxy.served().iter().filter(|s| s.target.starts_with("packages/")) {
            println!(
                "   proxy: {} from repository {}: {} bytes, sha256 {} verified",
                s.target, s.repo, s.length, s.sha256
            );
        }
    }
    running.stop().map_err(|e| e.to_string())?;
    drop(proxy);
    drop(server);

    println!("== a malicious mirror of the same files");
    let mirror = TestServer::serve_dir(&repo_dir).map_err(|e| format!("starting the loopback server: {e}"))?;
    let metadata_url = format!("{}/metadata/", mirror.url());
    let targets_url = format!("{}/targets/", mirror.url());
    let trusted_before = packman_testkit::dir_state(&client_dir);
    // It swaps the wheel's bytes (consistent snapshots: dir/SHA256.name).
    let wheel_info = packman_tuf::target::describe(&read(&wheels[2])?);
    let hashed = packman_tuf::layout::hashed_target(&target, wheel_info.name_hash().unwrap_or_default());
    mirror.set(&format!("/targets/{hashed}"), Behavior::Body(b"malware".to_vec()));
    {
        let mut up =
            Updater::new(&client_dir, &metadata_url, Some(&targets_url), Config::default()).map_err(|e| explain(&e))?;
        let info = up.get_target_info(&target).map_err(|e| explain(&e))?.ok_or("demo target missing")?;
        match up.download_target(&dir.join("attack-downloads"), &target, &info) {
            Err(e) => println!("   tampered wheel: refused: {e}"),
            Ok(_) => return Err("the client accepted a tampered wheel".into()),
        }
    }
    mirror.reset();
    mirror.set("/metadata/timestamp.json", Behavior::Body(old_timestamp));
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
    // A host that swaps the wheel and rewrites its project page to match, under both the
    // hashed and the plain names: pip alone would take it (the page is all it checks);
    // through the proxy the page fails its signed hash.
    mirror.reset();
    for name in [&hashed, &target] {
        mirror.set(&format!("/targets/{name}"), Behavior::Body(b"malware".to_vec()));
    }
    let page = packman_tuf::layout::simple_page(Some("demo-app"), true);
    let page_bytes = read(&repo_dir.join("targets").join(&page))?;
    let page_hash = packman_tuf::target::describe(&page_bytes);
    let forged = String::from_utf8_lossy(&page_bytes).replace(
        wheel_info.hashes.get("sha256").unwrap_or_default(),
        packman_tuf::target::describe(b"malware").hashes.get("sha256").unwrap_or_default(),
    );
    let page_url = packman_tuf::layout::hashed_target(&page, page_hash.name_hash().unwrap_or_default());
    for name in [&page_url, &page] {
        mirror.set(&format!("/targets/{name}"), Behavior::Body(forged.clone().into_bytes()));
    }
    let attacked_home = packman_trust::Home::at(dir.join("home-mirror"));
    let (proxy, running) = trust_and_proxy(&attacked_home, &format!("{}/", mirror.url()), &root_file)?;
    let site = dir.join("site-mirror");
    if pip_install(&site, &running.index_url(), true)? == Some(false) {
        let why = proxy.refusals().first().map(|r| r.message.clone()).unwrap_or_default();
        println!("   wheel and page swapped together: pip through the proxy refused, nothing installed: {why}");
        if site.join("demo_app").exists() {
            return Err("the tampered wheel was installed".into());
        }
    }
    running.stop().map_err(|e| e.to_string())?;
    println!(
        "== done: published, served, verified, installed by pip through packman's proxy; three attacks refused, trusted state unchanged"
    );
    Ok(())
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// `pip install demo-app` from the simple index at `index` into `site`, then runs it.
/// `Ok(None)` when pip cannot run here; `Ok(Some(false))` when pip failed and `expect_refusal`
/// (the attack), with nothing installed.
fn pip_install(site: &Path, index: &str, expect_refusal: bool) -> Result<Option<bool>, String> {
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-input", "--retries", "0"])
        .arg("--index-url")
        .arg(index)
        .arg("--target")
        .arg(site)
        .arg("demo-app");
    clean_pip_env(&mut pip);
    let out = match pip.output() {
        Ok(o) => o,
        Err(e) => {
            println!("   skipped: cannot run python3 -m pip ({e})");
            return Ok(None);
        }
    };
    if !out.status.success() {
        if expect_refusal {
            return Ok(Some(false));
        }
        return Err(format!("pip install failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    if expect_refusal {
        return Err(format!(
            "pip installed through the proxy from a tampering host:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        println!("   pip: {}", line.trim());
    }
    let mut run = Command::new("python3");
    run.args(["-m", "demo_app"]).env("PYTHONPATH", site);
    clean_pip_env(&mut run);
    let out = run.output().map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("the installed app failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    println!("   $ python3 -m demo_app\n   {}", String::from_utf8_lossy(&out.stdout).trim());
    Ok(Some(true))
}

/// The user's side: a trust ring in `home` holding `url` as repository "demo" (root v1 from
/// the publisher), and the verifying proxy on a free loopback port.
fn trust_and_proxy(home: &packman_trust::Home, url: &str, root_file: &Path) -> Result<(Arc<Proxy>, Running), String> {
    let transport = Arc::new(packman_client::DefaultTransport::new(Config::default().fetcher));
    let source = packman_trust::RootSource::File(root_file.to_path_buf());
    let entry = packman_trust::RepoEntry::new("demo", url);
    let added =
        packman_trust::add_repo(home, entry, &source, &[], transport, Config::default(), OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())?;
    println!(
        "   $ packman trust add demo {url} --root 1.root.json\n   demo: trusted {url} (root v{}, sha256 {})",
        added.status.root_version, added.status.root_fingerprint
    );
    let options = ProxyOptions { log_to_stderr: false, ..ProxyOptions::default() };
    let proxy = Arc::new(Proxy::open(home, options).map_err(|e| e.to_string())?);
    for (name, r) in proxy.refresh_all() {
        r.map_err(|e| format!("{name}: {e}"))?;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("127.0.0.1:0: {e}"))?;
    let running = Running::start(proxy.clone(), listener).map_err(|e| e.to_string())?;
    Ok((proxy, running))
}

fn clean_pip_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PIP_") {
            c.env_remove(&k);
        }
    }
    c.env("PIP_CONFIG_FILE", "/dev/null");
}

/// A minimal, valid, installable pure-Python wheel: the module, METADATA, WHEEL, RECORD.
fn write_wheel(
    dir: &Path,
    project: &str,
    version: &str,
    requires: Option<&str>,
    source: &str,
) -> Result<PathBuf, String> {
    let module = project.replace('-', "_");
    let dist_info = format!("{module}-{version}.dist-info");
    let mut metadata = format!(
        "Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nSummary: packman demo package\nRequires-Python: >=3.8\n"
    );
    if let Some(r) = requires {
        metadata.push_str(&format!("Requires-Dist: {r}\n"));
    }
    let mut files: Vec<(String, Vec<u8>)> = vec![(format!("{module}/__init__.py"), source.as_bytes().to_vec())];
    if project == "demo-app" {
        files.push((format!("{module}/__main__.py"), b"from demo_app import main\n\nmain()\n".to_vec()));
    }
    files.push((format!("{dist_info}/METADATA"), metadata.into_bytes()));
    files.push((
        format!("{dist_info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: packman-demo\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
    ));
    let mut record = String::new();
    for (name, bytes) in &files {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let b64 = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(digest.as_ref());
        record.push_str(&format!("{name},sha256={b64},{}\n", bytes.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    files.push((format!("{dist_info}/RECORD"), record.into_bytes()));

    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in &files {
        zip.start_file(name.as_str(), options).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())?;
    }
    zip.finish().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
