//! Values of `.kconfig` externs, as libbpf gives them to BPF programs:
//! `extern int LINUX_KERNEL_VERSION __kconfig;`,
//! `extern bool CONFIG_BPF_LSM __kconfig __weak;`.
//!
//! `CONFIG_*` come from the running kernel's build configuration
//! (`/proc/config.gz`, else `/boot/config-$(uname -r)`); `LINUX_*` are
//! computed here. [`encode`] turns a value into the bytes of the extern's C
//! type by libbpf's rules: `y`/`n`/`m` into `bool` (1/0, `m` refused), `enum
//! libbpf_tristate` (1/0/2) or `char` (the letter); numbers into integers
//! that hold them; quoted strings into `char[N]` (NUL-terminated, cut to
//! fit). An extern the kernel does not know is 0 when `__weak`, an error
//! naming it otherwise (externs.rs).

use std::collections::HashMap;
use std::io::Read;

/// The C type of an extern, as far as its value's encoding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KconfigType {
    /// `bool` / `_Bool`: 1 byte, 0 or 1.
    Bool,
    /// `enum libbpf_tristate`: 4 bytes, TRI_NO 0, TRI_YES 1, TRI_MODULE 2.
    Tristate,
    /// `char`: 1 byte, the letter `y`, `n` or `m` (or a number).
    Char,
    /// An integer of `size` bytes (1, 2, 4 or 8).
    Int {
        /// Bytes.
        size: usize,
        /// Whether negative values are allowed.
        signed: bool,
    },
    /// `char[len]`: a NUL-terminated string.
    CharArray(usize),
}

impl KconfigType {
    /// Bytes the value takes.
    pub fn size(self) -> usize {
        match self {
            KconfigType::Bool | KconfigType::Char => 1,
            KconfigType::Tristate => 4,
            KconfigType::Int { size, .. } => size,
            KconfigType::CharArray(len) => len,
        }
    }

    /// Alignment in the `.kconfig` data (natural, at most 8).
    pub fn align(self) -> usize {
        match self {
            KconfigType::CharArray(_) => 1,
            other => other.size().clamp(1, 8),
        }
    }
}

/// The running kernel's configuration: `CONFIG_X` → its raw value (`y`,
/// `m`, `n`, `42`, `0x10`, `"text"` with its quotes).
pub struct KernelConfig {
    values: HashMap<String, String>,
}

/// The running kernel's configuration, read now (a few milliseconds; not
/// kept: a load that needs it reads it once, and the agent does not carry
/// its ~10,000 entries). Errors name the files tried and why each failed.
pub fn kernel_config() -> Result<KernelConfig, String> {
    let release = kernel_release();
    let boot = format!("/boot/config-{release}");
    let mut tried = Vec::new();
    match read_gz("/proc/config.gz") {
        Ok(text) => return Ok(KernelConfig::parse(&text)),
        Err(e) => tried.push(format!("/proc/config.gz: {e}")),
    }
    match std::fs::read_to_string(&boot) {
        Ok(text) => return Ok(KernelConfig::parse(&text)),
        Err(e) => tried.push(format!("{boot}: {e}")),
    }
    Err(format!(
        "the kernel's configuration is unreadable ({}); load the `configs` module (CONFIG_IKCONFIG_PROC) or install the kernel's config in /boot",
        tried.join("; ")
    ))
}

fn read_gz(path: &str) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text)?;
    Ok(text)
}

impl KernelConfig {
    /// Parses a kernel `.config`: `CONFIG_X=value` lines, and `# CONFIG_X
    /// is not set` as `n`. Other lines are ignored.
    pub fn parse(text: &str) -> KernelConfig {
        let mut values = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# ") {
                if let Some(name) = rest.strip_suffix(" is not set")
                    && name.starts_with("CONFIG_")
                {
                    values.insert(name.to_string(), "n".to_string());
                }
                continue;
            }
            if let Some((name, value)) = line.split_once('=')
                && name.starts_with("CONFIG_")
            {
                values.insert(name.to_string(), value.to_string());
            }
        }
        KernelConfig { values }
    }

    /// The raw value of `name` (`CONFIG_BPF=y` gives `y`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// `uname -r` (`6.8.0-45-generic`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `KERNEL_VERSION(a, b, c)` of a release string (`6.8.12-foo` gives
/// `0x06080c`); the patch level saturates at 255 as libbpf's does.
pub fn kernel_version_code(release: &str) -> Option<u32> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major << 16) + (minor.min(255) << 8) + patch.min(255))
}

/// The value of a `LINUX_*` extern libbpf defines, `None` for other names.
/// `LINUX_HAS_BPF_COOKIE` (bpf_get_attach_cookie, Linux 5.15) and
/// `LINUX_HAS_SYSCALL_WRAPPER` (`__<arch>_sys_*` entry points, Linux 4.17)
/// are judged by the kernel version.
pub fn linux_value(name: &str) -> Option<String> {
    let code = kernel_version_code(&kernel_release()).unwrap_or(0);
    match name {
        "LINUX_KERNEL_VERSION" => Some(code.to_string()),
        "LINUX_HAS_BPF_COOKIE" => Some(yes_no(code >= 0x050f00)),
        "LINUX_HAS_SYSCALL_WRAPPER" => Some(yes_no(code >= 0x041100)),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "y" } else { "n" }.to_string()
}

/// The bytes of `value` (a raw config value) for an extern of type `ty`,
/// or why it does not fit (libbpf refuses the same).
pub fn encode(value: &str, ty: KconfigType) -> Result<Vec<u8>, String> {
    let size = ty.size();
    match value {
        "y" | "n" | "m" => {
            let letter = value.as_bytes()[0];
            let tri = match letter {
                b'n' => 0u8,
                b'y' => 1,
                _ => 2,
            };
            match ty {
                KconfigType::Bool if letter == b'm' => Err(format!(
                    "the kernel says `{value}` (a module), which a bool cannot hold: declare it `enum libbpf_tristate` or `char`"
                )),
                KconfigType::Bool => Ok(vec![tri]),
                KconfigType::Tristate => Ok(u32::from(tri).to_le_bytes().to_vec()),
                KconfigType::Char => Ok(vec![letter]),
                _ => Err(format!(
                    "the kernel says `{value}`, which needs a bool, `enum libbpf_tristate` or char extern, not {}",
                    describe(ty)
                )),
            }
        }
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            let KconfigType::CharArray(len) = ty else {
                return Err(format!(
                    "the kernel's value is the string {quoted}, which needs a char array extern, not {}",
                    describe(ty)
                ));
            };
            let text = &quoted.as_bytes()[1..quoted.len() - 1];
            let mut out = vec![0u8; len];
            let n = text.len().min(len.saturating_sub(1));
            out[..n].copy_from_slice(&text[..n]);
            Ok(out)
        }
        number => {
            let parsed = parse_number(number).ok_or_else(|| {
                format!("the kernel's value `{number}` is not y, n, m, a number or a quoted string")
            })?;
            let fits = match ty {
                KconfigType::Bool => (0..=1).contains(&parsed),
                KconfigType::Char => (-128..=255).contains(&parsed),
                KconfigType::Int { size, signed: true } => {
                    let bits = size as u32 * 8;
                    bits >= 64 || (-(1i128 << (bits - 1))..(1i128 << (bits - 1))).contains(&parsed)
                }
                KconfigType::Int {
                    size,
                    signed: false,
                } => {
                    let bits = size as u32 * 8;
                    parsed >= 0 && (bits >= 64 || parsed < (1i128 << bits))
                }
                _ => {
                    return Err(format!(
                        "the kernel's value `{number}` is a number, which needs an integer, char or bool extern, not {}",
                        describe(ty)
                    ));
                }
            };
            if !fits {
                return Err(format!(
                    "the kernel's value `{number}` does not fit in {}",
                    describe(ty)
                ));
            }
            Ok((parsed as i64).to_le_bytes()[..size].to_vec())
        }
    }
}

/// A number as the kernel's config writes it: decimal, `0x` hex, signed.
fn parse_number(s: &str) -> Option<i128> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i128>().ok()?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The C type in words, for messages.
pub fn describe(ty: KconfigType) -> String {
    match ty {
        KconfigType::Bool => "bool".into(),
        KconfigType::Tristate => "enum libbpf_tristate".into(),
        KconfigType::Char => "char".into(),
        KconfigType::Int { size, signed } => {
            format!(
                "a {}-byte {} integer",
                size,
                if signed { "signed" } else { "unsigned" }
            )
        }
        KconfigType::CharArray(len) => format!("char[{len}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_gives_each_option_its_raw_value() {
        let cfg = KernelConfig::parse(
            "# comment\nCONFIG_BPF=y\nCONFIG_NR_CPUS=64\n# CONFIG_KASAN is not set\nCONFIG_LOCALVERSION=\"-test\"\nCONFIG_EXT4_FS=m\nCONFIG_BASE=0x10\n",
        );
        assert_eq!(cfg.get("CONFIG_BPF"), Some("y"));
        assert_eq!(cfg.get("CONFIG_NR_CPUS"), Some("64"));
        assert_eq!(cfg.get("CONFIG_KASAN"), Some("n"));
        assert_eq!(cfg.get("CONFIG_LOCALVERSION"), Some("\"-test\""));
        assert_eq!(cfg.get("CONFIG_EXT4_FS"), Some("m"));
        assert_eq!(cfg.get("CONFIG_MISSING"), None);
    }

    #[test]
    fn version_codes_as_the_kernel_version_macro() {
        assert_eq!(kernel_version_code("6.8.12-foo"), Some(0x06080c));
        assert_eq!(kernel_version_code("5.15.300"), Some(0x050fff));
        assert_eq!(kernel_version_code("6.18"), Some(0x061200));
        assert_eq!(kernel_version_code("6.18.44-fc-v669"), Some(0x06122c));
        assert_eq!(kernel_version_code("garbage"), None);
    }

    #[test]
    fn each_kind_of_value_encodes_into_the_types_that_hold_it() {
        use KconfigType::*;
        let int = |size, signed| Int { size, signed };
        assert_eq!(encode("y", Bool).unwrap(), [1]);
        assert_eq!(encode("n", Bool).unwrap(), [0]);
        assert!(encode("m", Bool).unwrap_err().contains("a module"));
        assert_eq!(encode("m", Tristate).unwrap(), [2, 0, 0, 0]);
        assert_eq!(encode("y", Tristate).unwrap(), [1, 0, 0, 0]);
        assert_eq!(encode("m", Char).unwrap(), [b'm']);
        assert!(encode("y", int(4, true)).unwrap_err().contains("4-byte"));
        assert_eq!(encode("64", int(4, true)).unwrap(), 64i32.to_le_bytes());
        assert_eq!(encode("0x10", int(8, false)).unwrap(), 16u64.to_le_bytes());
        assert_eq!(encode("-1", int(2, true)).unwrap(), (-1i16).to_le_bytes());
        assert!(
            encode("-1", int(2, false))
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(
            encode("256", int(1, false))
                .unwrap_err()
                .contains("does not fit")
        );
        assert_eq!(encode("1", Bool).unwrap(), [1]);
        assert!(encode("2", Bool).is_err());
        assert_eq!(encode("\"-test\"", CharArray(4)).unwrap(), *b"-te\0");
        assert_eq!(encode("\"ab\"", CharArray(4)).unwrap(), *b"ab\0\0");
        assert!(
            encode("\"ab\"", int(4, true))
                .unwrap_err()
                .contains("char array")
        );
        assert!(
            encode("1.5", int(4, true))
                .unwrap_err()
                .contains("not y, n, m")
        );
    }
}
