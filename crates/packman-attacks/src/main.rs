//! `packman-attack-server DIR`: an [`Upstream`] for tests in other languages.
//!
//! Publishes S1 and S2 into DIR, serves it on 127.0.0.1 and prints `url URL`, then reads
//! one command a line from stdin and answers each with a line starting `ok` or `error`:
//! - `advance`: publish S3 (project `gamma` added);
//! - `arm NAME`: perform the attack NAME (`packman_attacks::Attack::name`) from now on;
//!   answers `ok persisted FILE` when a client may persist that metadata file while refusing;
//! - `expect NAME`: answers `ok WORDS`, the JSON list of word groups the refusal must name;
//! - `list`: answers `ok NAME NAME …`, every attack;
//! - `recover`: after `arm fast-forward`, rotate the timestamp key and publish project `delta`
//!   at a lower timestamp version;
//! - `disarm`: serve the genuine repository again;
//! - `quit` (or end of input): stop.

use std::io::{BufRead, Write};

use packman_attacks::{Attack, Upstream};

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: packman-attack-server DIR");
        std::process::exit(2);
    };
    let mut up = match Upstream::new(std::path::Path::new(&dir)) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("packman-attack-server: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "url {}", up.url());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("advance"), None) => up.advance().map(|_| "ok".to_string()).map_err(|e| e.to_string()),
            (Some("recover"), None) => up.recover().map(|_| "ok".to_string()).map_err(|e| e.to_string()),
            (Some("arm"), Some(name)) => match Attack::from_name(name) {
                Some(a) => up
                    .arm(a)
                    .map(|armed| match armed.persisted {
                        Some((file, _)) => format!("ok persisted {file}"),
                        None => "ok".to_string(),
                    })
                    .map_err(|e| e.to_string()),
                None => Err(format!("unknown attack {name:?}")),
            },
            (Some("expect"), Some(name)) => match Attack::from_name(name) {
                Some(a) => Ok(format!("ok {}", serde_json::json!(a.expect()))),
                None => Err(format!("unknown attack {name:?}")),
            },
            (Some("list"), None) => {
                Ok(Attack::ALL.iter().fold("ok".to_string(), |acc, a| format!("{acc} {}", a.name())))
            }
            (Some("disarm"), None) => {
                up.disarm();
                Ok("ok".to_string())
            }
            (Some("quit"), None) => break,
            _ => Err(format!("unknown command {line:?}")),
        };
        let _ = match reply {
            Ok(r) => writeln!(out, "{r}"),
            Err(e) => writeln!(out, "error {e}"),
        };
        let _ = out.flush();
    }
}
