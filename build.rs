//! Embeds the libtorch library folder as the binary's run path, so that `segnode` runs
//! without LD_LIBRARY_PATH. An LD_LIBRARY_PATH set by the operator (for instance at a CUDA
//! machine's own torch 2.11) still takes precedence, because the linker writes RUNPATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
