#!/usr/bin/env bash
# Mutation testing of the verification code (docs/MUTATION.md): the trust core's
# trusted.rs, target.rs, crypto.rs and metadata.rs, then the duplicate-key checks of
# metadata.rs's hand-written deserialisers, then canonical.rs, pattern.rs and layout.rs,
# each against packman-tuf's own tests; then the updater's verification path against
# packman-client's tests. Needs cargo-mutants
# (`cargo install cargo-mutants --locked`). Mutates the working tree in place (each file is
# restored after its mutant), so run it on a clean checkout and leave it alone until done.
# Output: mutants.out-{core,dupkeys,format,client}/ (gitignored). Extra arguments go to
# both runs (e.g. --iterate, to retest only what the last run did not catch).
set -euo pipefail
cd "$(dirname "$0")/.."

# Publisher-side code (describing, signing, serialising) and plain accessors are not
# verification: left out to keep the run affordable.
core_exclude='Describer|describe|TargetFile::from_data|Signer::|p256_spki_pem|fast_canonical|fmt_u64|compute_keyid|Key::new|Serialize for|fmt::Display|TopLevelRole::|MetaMap::(push_name|insert|len|is_empty|versions_only|iter|versions)|FromIterator|PartialEq for MetaMap|MetaFile::new|Expires::parse|Hashes::is_empty|for_each_chunk|ReadError|TrustedSet::(with_expiry|expiry|reference_time|root|timestamp|snapshot|targets|expired)|SuccinctRoles::bin_name|Root::consistent_snapshot|expecting|visit_map'
# Of canonical.rs, pattern.rs and layout.rs: the signing-side canonicaliser (to_canonical
# of a Rust value, signed_forms, snapshot_forms) and the publisher's, mirror's and server's
# file naming and ordering (write_rank, is_immutable, plain_copy_wanted, Python index
# pages, RepoPaths) are not verification.
format_exclude='write_rank|is_immutable|plain_copy_wanted|simple_page|page_link_to_package|package_target|RepoPaths::|[ ]to_canonical|signed_forms|snapshot_forms|SignedForms::json|From<&serde_json::Value>|expecting'
# The updater's functions that verify what it fetched; not fetching, storage or progress.
client_re='Updater::(load_root|load_timestamp|load_snapshot|load_targets|get_target_info|refresh_local|refresh|download_verified_to)|TargetFetcher::attempt|is_cached|VerifyingWriter|timestamp_snapshot_keys|PlainCopy::verify'

nice -n 5 cargo mutants --in-place --no-shuffle --timeout 60 --test-package packman-tuf \
    -f crates/packman-tuf/src/trusted.rs -f crates/packman-tuf/src/target.rs \
    -f crates/packman-tuf/src/crypto.rs -f crates/packman-tuf/src/metadata.rs \
    -E "$core_exclude" -o mutants.out-core "$@" || core=$?
nice -n 5 cargo mutants --in-place --no-shuffle --timeout 60 --test-package packman-tuf \
    -f crates/packman-tuf/src/metadata.rs -F visit_map -o mutants.out-dupkeys "$@" || dupkeys=$?
nice -n 5 cargo mutants --in-place --no-shuffle --timeout 60 --test-package packman-tuf \
    -f crates/packman-tuf/src/canonical.rs -f crates/packman-tuf/src/pattern.rs \
    -f crates/packman-tuf/src/layout.rs -E "$format_exclude" -o mutants.out-format "$@" || format=$?
nice -n 5 cargo mutants --in-place --no-shuffle --timeout 120 --test-package packman-client \
    -f crates/packman-client/src/updater.rs -f crates/packman-client/src/updater/plain.rs \
    -F "$client_re" -o mutants.out-client "$@" || client=$?
# cargo-mutants exits 2 when a mutant was missed, 3 on a timeout: report the worst.
worst=0
for rc in "${core:-0}" "${dupkeys:-0}" "${format:-0}" "${client:-0}"; do
    if (( rc > worst )); then worst=$rc; fi
done
exit "$worst"
