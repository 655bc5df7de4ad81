//! Mirrors that need no trust: [`sync`] copies a TUF repository into a local directory that
//! `packman serve` (or any static host) serves, every byte checked by packman-client's
//! [`Updater`](packman_client::Updater) first. No second verifier lives here: metadata bytes
//! are those the updater accepted ([`Updater::record_verified`](packman_client::Updater::record_verified)),
//! the set of targets is the one its delegation search resolves
//! ([`Updater::all_targets`](packman_client::Updater::all_targets)), and target files are its
//! verified downloads.
//!
//! Fetches fail over from the upstream to its mirrors (given in [`SyncOptions::mirrors`], and
//! those of the upstream's signed list, read after the verified refresh) through
//! packman-client's [`failover`](packman_client::failover): each attempt is verified before
//! it counts, and [`SyncReport::mirror_failures`] names each mirror that misbehaved and how.
//! [`verify`] audits a mirror offline against a trusted root; [`repair`] then fetches again,
//! through a full sync, only the files the audit found missing or corrupt.
//! [`export`] writes a mirror (or what changed since a snapshot version) into one bundle file
//! and [`import`] applies one through [`sync`] itself, the bundle read as the upstream (see
//! `src/bundle.rs` for the format and what is refused).
//!
//! # DEST
//! - `metadata/`, `targets/`: the repository, in the layout of [`packman_tuf::layout`], holding
//!   the upstream's exact bytes (never re-serialised): every metadata version the mirror
//!   accepted (`N.ROLE.json`, every root version, `root.json` the newest root), the newest
//!   `timestamp.json`, each signed target as `DIR/HASH.NAME` plus a hard link under its plain
//!   name for `packages/` and `simple/` targets ([`layout::plain_copy_wanted`](packman_tuf::layout::plain_copy_wanted)).
//! - `.packman-mirror-work/` (never served: `packman serve` serves `metadata/` and `targets/`
//!   only): `staging/`, `verified/` (the resume journal: targets downloaded and verified,
//!   under their hashed names, until the commit moves them into `targets/`) and
//!   `metadata-next/`. They must be on DEST's filesystem (verified files are renamed into
//!   place, `metadata/` is swapped with the next one); the directory exists only while a
//!   sync runs (or after a crash, until the next sync) and is removed after every sync,
//!   refused or not. Downloads are written straight under their journal names (no temp file
//!   and rename), so a journal entry does not mean "verified": after a crash the next sync
//!   reuses `verified/` only file by file, each checked again (length and hashes, by the
//!   trust core) against the metadata it has just verified, and fetched again if it does not
//!   match. Verified downloads are not fsynced one by one: a background thread writes the
//!   batch back as it arrives (one `syncfs` per 64 MiB, [`packman_fs::BackgroundSync`]), and
//!   the whole batch, journal included, is made durable at once before any file gets its
//!   final name, so a crash can tear only files the next sync checks again.
//!
//! # The state ([`SyncOptions::state`])
//! `lock` (one sync at a time), `metadata/` (the updater's trusted state) and `filter.json`
//! (the [`Filter`] of a partial mirror, see `src/filter.rs`). In `DEST/.packman-mirror` by
//! default (never served); the packman command keeps it in the user's data directory
//! (`--state DIR` to choose), so DEST holds only what it serves. Trusted metadata is state
//! that must survive, hence the data directory rather than the cache: a mirror that lost it
//! needs `--root` again, and then refuses to serve a timestamp older than the one it serves
//! ([`MirrorError::OlderThanDest`]). A mirror whose state is in `DEST/.packman-mirror` while
//! another state directory is given moves it there on its next successful sync (read from
//! the old place, written to the new one on commit, the old directory removed last).
//!
//! # One sync
//! 1. **Verify, touching nothing served.** The trusted state is copied to
//!    `staging/metadata` (or, on the first sync, bootstrapped there from the root given) and
//!    the updater runs on that copy: root rotations, timestamp, snapshot, every targets role
//!    reachable through the delegations. Targets not yet in DEST (by hashed name with the
//!    signed length) are downloaded into the journal (`verified/`), `--jobs` at a time, and
//!    verified; one that fails verification is removed at once. Any refusal stops here:
//!    staging is removed and DEST and the state are byte-identical to before (on a first
//!    sync, the state directory and DEST it created are removed too).
//!    **Nothing new upstream** (the timestamp fetched has the trusted version, the root is
//!    the same, DEST serves that timestamp, the filter is unchanged and no journal waits):
//!    the sync stops here ([`SyncReport::unchanged`]); it does not walk the roles or look at
//!    DEST's targets, so a no-change sync costs the root probe and the timestamp whatever
//!    the repository's size. [`SyncOptions::full`] does the full pass anyway (fetching what
//!    DEST lost); `mirror verify` finds such losses. The trusted state is staged by hard
//!    links (copies across file systems): the updater and the commit replace files whole.
//! 2. **Commit, in [`write_rank`](packman_tuf::layout::write_rank) order.** Verified targets are
//!    renamed to their hashed names (a directory DEST does not have yet, as on a first sync,
//!    in one rename of its journal directory) and plain links put in place; the accepted metadata is
//!    written (each file atomically, skipped when DEST has those bytes already), the metadata
//!    directory synced, then `timestamp.json` replaced last. Then the trusted state is
//!    replaced file by file with the staged one, and last, hashed target files that no role
//!    of the new metadata lists are removed. Plain names stay, as the publisher keeps them (a
//!    removed distribution's plain copy binds its name to its bytes).
//!
//! # Crash consistency
//! A crash (or I/O error) during commit leaves DEST a complete repository: before the
//! `timestamp.json` rename, readers are led by the old timestamp to files that are all still
//! there (new files are only added before it; nothing is removed until after it); after it,
//! by the new timestamp to files that were all durable before it. The trusted state is never
//! ahead of DEST (it is replaced after the timestamp), and a state mixed of old and new files
//! is one the updater itself can leave and recovers from, so the next sync completes the work.
//!
//! Windows, stated precisely:
//! - **Root rotation.** A sync that brings a new root (whatever keys it changes) does not
//!   write into the served `metadata/`: it builds the whole next tree as
//!   `.packman-mirror/metadata-next` (hard links to the files that stay, new roots, snapshot,
//!   roles and timestamp written), makes it durable, and swaps it with `metadata/` in one
//!   step ([`packman_fs::platform::exchange`]: Linux `renameat2(RENAME_EXCHANGE)`), then
//!   removes the old tree. A reader opening any path under `metadata/` sees the old roots
//!   with the old timestamp or the new roots with the new timestamp, never a mix. With the
//!   portable fallback (`PACKMAN_PORTABLE_FS=1`, other systems, or filesystems without
//!   `RENAME_EXCHANGE`) the swap is three renames: for the two syscalls between the first
//!   two, `metadata/` does not exist and readers get 404 (never a mix); a crash there leaves
//!   `metadata.exchanging`, which the next sync puts back before anything else. What no
//!   mirror can close: a client that probes `N+1.root.json` just before the swap and fetches
//!   `timestamp.json` just after trusts the old root and refuses the new timestamp (as it
//!   would against the publisher itself); it accepts nothing wrong and succeeds on retry.
//!   Cost: one hard link per metadata file the mirror keeps, on rotations only.
//! - **Removed targets.** Target files nothing lists any more go right after the timestamp
//!   is replaced. A client that read the previous timestamp just before that and fetches such
//!   a target afterwards gets a 404 (the publisher keeps them for a few snapshots).
//!
//! # What is not copied
//! - Metadata versions the upstream still keeps but that were superseded before the mirror's
//!   first sync (the timestamp leads only to the current snapshot; older versions cannot be
//!   verified through the updater). Every version accepted since is kept; the mirror never
//!   removes metadata.
//! - Roles the snapshot lists that no delegation reaches (nothing can verify them).
//! - Root versions before the root given on a first sync are fetched and kept only if they
//!   verify as a chain ending in it (see [`SyncReport::root_chain_gap`]). Such older roots
//!   are as trustworthy as any file from an untrusted host: bootstrap clients from a trusted
//!   root, not from a mirror.
#![forbid(unsafe_code)]

mod bundle;
mod commit;
mod error;
mod filter;
mod sync;
mod verify;

pub use bundle::{
    export, import, BundleSource, ExportOptions, ExportReport, ImportOptions, INDEX_NAME as BUNDLE_INDEX,
};
pub use error::MirrorError;
pub use filter::Filter;
pub use sync::{repair, served, sync, sync_with, MirrorPaths, Served, SyncOptions, SyncProgress, SyncReport};
pub use verify::{verify, Corrupt, VerifyOptions, VerifyReport};
