// mxguard patch: the bindings are generated once (bindgen 0.56 against Debian bookworm's
// libclamav 1.4 header, src/bindings.rs) instead of at every build, so a build needs neither
// libclang nor bindgen; this script only finds and links libclamav.
fn main() {
    pkg_config::Config::new()
        .atleast_version("0.103")
        .probe("libclamav")
        .expect("libclamav not found by pkg-config (apt-get install libclamav-dev)");
    println!("cargo:rerun-if-changed=build.rs");
}
