//! What libtorch this process runs on: version, threads, CUDA devices.

/// The libtorch release this build links against (the PyPI `torch` wheel `tch` 0.24 needs).
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// A one-line description of the libtorch runtime, for logs and `segnode --version`.
pub fn describe() -> String {
    let cuda = tch::Cuda::is_available();
    format!(
        "libtorch (tch {}) threads={} cuda={} devices={}",
        "0.24",
        tch::get_num_threads(),
        cuda,
        if cuda { tch::Cuda::device_count() } else { 0 }
    )
}
