//! Which device a model runs on (`auto` / `cpu` / `cuda:N` in the pipeline config).

use std::fmt;
use std::str::FromStr;

use tch::{Cuda, Device};

use super::InferError;

/// The device a pipeline asks for. Parsed from `"auto"`, `"cpu"`, `"cuda"` (= `cuda:0`)
/// or `"cuda:N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees a GPU, else the CPU.
    #[default]
    Auto,
    /// The CPU, even when a GPU is present.
    Cpu,
    /// This CUDA device; failing at model load if it is not there.
    Cuda(usize),
}

impl DeviceChoice {
    /// The libtorch device this choice means on this machine, or why it cannot be had.
    pub fn resolve(self) -> Result<Device, InferError> {
        match self {
            DeviceChoice::Auto if Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                if !Cuda::is_available() {
                    return Err(InferError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: "libtorch sees no CUDA device (no GPU, no driver, or a CPU-only \
                                 libtorch); use device = \"auto\" or \"cpu\""
                            .into(),
                    });
                }
                let count = Cuda::device_count();
                if n as i64 >= count {
                    return Err(InferError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: format!(
                            "only {count} CUDA device(s) visible (cuda:0..cuda:{})",
                            count - 1
                        ),
                    });
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("device {s:?}: expected \"auto\", \"cpu\" or \"cuda:N\"")),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_choices() {
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert_eq!(" CPU ".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(err.contains("cuda:N"), "{bad:?}: {err}");
        }
        for c in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(3)] {
            assert_eq!(c.to_string().parse::<DeviceChoice>(), Ok(c));
        }
    }

    #[test]
    fn auto_resolves_to_cpu_without_cuda() {
        // This machine (and CI) has no GPU; on a CUDA host Auto must pick cuda:0 instead.
        let expected = if Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        };
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), expected);
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
        if !Cuda::is_available() {
            let err = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
            assert!(err.contains("cuda:0") && err.contains("no CUDA"), "{err}");
        }
    }
}
