//! bf16 autocast on CUDA, through two libtorch C++ functions that tch does not wrap.
//!
//! tch exposes autocast on/off but not its dtype, and CUDA autocast defaults to float16.
//! The dtype is set by plain exported libtorch functions (ATen/autocast_mode.h):
//!
//! ```text
//! void at::autocast::set_autocast_dtype(c10::DeviceType, c10::ScalarType);
//! c10::ScalarType at::autocast::get_autocast_dtype(c10::DeviceType);
//! ```
//!
//! Both enums are `int8_t`-backed, so on the Itanium C++ ABI the calls are ABI-identical
//! to C functions of `i8`. Calling a C++ function by its mangled name is only sound for
//! the libtorch release whose signature was read, so nothing here is linked: the symbols
//! are looked up in the running process the first time a bf16 model loads, after the
//! loaded libtorch's version is checked against [`CHECKED_LIBTORCH`]. A mismatch, or a
//! libtorch without the symbols, refuses `precision = "bf16"` at start-up with the reason;
//! float32 never touches this file.

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::InferError;

/// The libtorch release (major.minor) whose autocast signatures were read for this file;
/// the one `tch` 0.24 is built for.
pub const CHECKED_LIBTORCH: &str = "2.11";

const SET_DTYPE: &CStr = c"_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE";
const GET_DTYPE: &CStr = c"_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE";

/// `c10::DeviceType::CUDA`.
const C10_DEVICE_CUDA: i8 = 1;
/// `c10::ScalarType::BFloat16`.
const C10_BFLOAT16: i8 = 15;

type SetDtype = unsafe extern "C" fn(device_type: i8, dtype: i8);
type GetDtype = unsafe extern "C" fn(device_type: i8) -> i8;

/// The two autocast dtype functions of the loaded libtorch, found and version-checked.
#[derive(Debug)]
pub struct Bf16Autocast {
    set_dtype: SetDtype,
    get_dtype: GetDtype,
    /// The libtorch library the functions were found in, for the start-up log.
    library: PathBuf,
    /// Its version as its installation states it (`2.11.0+cu130`).
    version: String,
}

impl Bf16Autocast {
    /// The process's bf16 autocast, checked once: the loaded libtorch must be
    /// [`CHECKED_LIBTORCH`] and export both functions.
    pub fn checked() -> Result<&'static Bf16Autocast, InferError> {
        static CHECKED: OnceLock<Result<Bf16Autocast, String>> = OnceLock::new();
        CHECKED
            .get_or_init(Bf16Autocast::find)
            .as_ref()
            .map_err(|reason| InferError::Bf16Unavailable {
                reason: reason.clone(),
            })
    }

    fn find() -> Result<Bf16Autocast, String> {
        let set = lookup(SET_DTYPE)?;
        let get = lookup(GET_DTYPE)?;
        let library = library_of(set).ok_or_else(|| {
            "cannot tell which libtorch library exports the autocast functions".to_string()
        })?;
        let version = installed_version(&library).ok_or_else(|| {
            format!(
                "cannot read the version of the libtorch at {} (no torch/version.py or \
                 build-version beside its lib/ folder)",
                library.display()
            )
        })?;
        if !same_release(&version, CHECKED_LIBTORCH) {
            return Err(format!(
                "libtorch {version} (at {}) is not the {CHECKED_LIBTORCH} release whose autocast \
                 signatures segnode was built against",
                library.display()
            ));
        }
        // SAFETY: both symbols exist in the loaded libtorch, whose version is the one whose
        // declarations (above) were read; fn pointers and data pointers share a size here.
        let (set_dtype, get_dtype) = unsafe {
            (
                std::mem::transmute::<*mut c_void, SetDtype>(set),
                std::mem::transmute::<*mut c_void, GetDtype>(get),
            )
        };
        Ok(Bf16Autocast {
            set_dtype,
            get_dtype,
            library,
            version,
        })
    }

    /// The libtorch version that was checked (`2.11.0+cu130`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The libtorch library the functions come from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The current thread's CUDA autocast dtype as a `c10::ScalarType` number.
    fn cuda_dtype(&self) -> i8 {
        // SAFETY: a getter of a thread-local value; the argument is a valid DeviceType.
        unsafe { (self.get_dtype)(C10_DEVICE_CUDA) }
    }

    /// Run `f` under CUDA autocast with bfloat16 (what `torch.autocast("cuda",
    /// dtype=torch.bfloat16)` does). Autocast state is per thread; the previous dtype is
    /// restored afterwards, even if `f` panics.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let _restore = DtypeGuard {
            autocast: self,
            previous: self.cuda_dtype(),
        };
        // SAFETY: valid DeviceType and ScalarType values; thread-local setter.
        unsafe { (self.set_dtype)(C10_DEVICE_CUDA, C10_BFLOAT16) };
        tch::autocast(true, f)
    }
}

/// Restores the thread's previous CUDA autocast dtype on drop.
struct DtypeGuard<'a> {
    autocast: &'a Bf16Autocast,
    previous: i8,
}

impl Drop for DtypeGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: restores a value previously read from the same getter.
        unsafe { (self.autocast.set_dtype)(C10_DEVICE_CUDA, self.previous) }
    }
}

/// The address of `symbol` among the libraries already loaded into the process.
fn lookup(symbol: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: RTLD_DEFAULT searches the global scope; the name is NUL-terminated.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) };
    if address.is_null() {
        Err(format!(
            "the loaded libtorch does not export {}",
            symbol.to_string_lossy()
        ))
    } else {
        Ok(address)
    }
}

/// The file of the shared library that holds `address`.
fn library_of(address: *mut c_void) -> Option<PathBuf> {
    // SAFETY: Dl_info is plain pointers; all-zero is a valid (empty) value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-parameter; dladdr only reads the address.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// The version a libtorch installation states beside `lib/<library>`: a PyPI wheel's
/// `torch/version.py` (`__version__ = '2.11.0+cu130'`) or a libtorch archive's
/// `build-version`.
fn installed_version(library: &Path) -> Option<String> {
    let root = library.parent()?.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        return version_py(&text);
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    Some(text.trim().to_string()).filter(|v| !v.is_empty())
}

/// `__version__` from a torch `version.py`.
fn version_py(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("__version__")?.trim_start();
        let value = value.strip_prefix('=')?.trim();
        let quoted = value.strip_prefix(['\'', '"'])?;
        let end = quoted.find(['\'', '"'])?;
        Some(quoted[..end].to_string())
    })
}

/// Whether `version` (`2.11.0+cu130`) is of `release` (`2.11`).
fn same_release(version: &str, release: &str) -> bool {
    version
        .strip_prefix(release)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '+']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_of_either_kind_of_installation() {
        let text = "from typing import Optional\n__version__ = '2.11.0+cu130'\ndebug = False\n";
        assert_eq!(version_py(text).as_deref(), Some("2.11.0+cu130"));
        assert_eq!(
            version_py("__version__ = \"2.11.0\"\n").as_deref(),
            Some("2.11.0")
        );
        assert_eq!(version_py("git_version = 'abc'\n"), None);

        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libtorch/lib/libtorch_cpu.so");
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        assert_eq!(installed_version(&lib), None);
        std::fs::write(dir.path().join("libtorch/build-version"), "2.10.0+cpu\n").unwrap();
        assert_eq!(installed_version(&lib).as_deref(), Some("2.10.0+cpu"));
    }

    #[test]
    fn only_the_checked_release_matches() {
        for ok in ["2.11", "2.11.0", "2.11.0+cu130", "2.11.1+cpu"] {
            assert!(same_release(ok, "2.11"), "{ok}");
        }
        for other in ["2.1", "2.1.0", "2.110.0", "2.10.0+cpu", "3.11.0", ""] {
            assert!(!same_release(other, "2.11"), "{other}");
        }
    }

    #[test]
    fn the_loaded_libtorch_passes_and_the_dtype_is_set_and_restored() {
        // The test binary runs on the project's torch 2.11 venv, so the check must pass;
        // the dtype is thread-local state and needs no GPU.
        let autocast = Bf16Autocast::checked().unwrap();
        assert!(same_release(autocast.version(), CHECKED_LIBTORCH));
        assert!(
            autocast
                .library()
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("torch")),
            "{}",
            autocast.library().display()
        );
        let before = autocast.cuda_dtype();
        let inside = autocast.run(|| autocast.cuda_dtype());
        assert_eq!(inside, C10_BFLOAT16);
        assert_eq!(autocast.cuda_dtype(), before);
    }
}
