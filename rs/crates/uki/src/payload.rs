//! What systemd-stub 252 and systemd-boot 252 accept in each section, checked before anything is
//! written, so a UKI that would not boot (or would boot with a different command line than the one
//! it carries) is refused at build time. The rules come from the sources of systemd 252.39
//! (Debian's systemd-boot-efi 252.39-1~deb12u2): `src/boot/efi/{stub,boot,linux,linux_x86,pe,util}.c`.

use object::pe::{self, ImageDosHeader, ImageNtHeaders32, ImageNtHeaders64};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use object::read::ReadRef;
use object::LittleEndian as LE;

/// The largest `.osrel`, `.cmdline` or `.uname` we write or [`crate::read_section`] reads.
pub const SMALL_SECTION_MAX: u64 = 64 * 1024;

/// Checks the kernel command line. systemd-stub 252 hands `.cmdline` to the kernel through
/// `xstrn8_to_16` (stops at a NUL, drops what is not UCS-2), `mangle_stub_cmdline` (control
/// characters become spaces, trailing spaces go) and, on the EFI handover path, turns every
/// character above 0x7E into a space. Only printable ASCII therefore reaches the kernel exactly
/// as the UKI (and the TPM measurement of the section) carries it. The section holds exactly these
/// bytes: no NUL terminator and no newline (the stub bounds the text by the section's VirtualSize
/// and adds the NUL itself; ukify writes it the same way).
pub fn check_cmdline(cmdline: &str, kernel_max: Option<u32>) -> Result<(), String> {
    if cmdline.is_empty() {
        return Err(
            "the kernel command line is empty (the verified root needs at least roothash=)".into(),
        );
    }
    if let Some((i, b)) = cmdline
        .bytes()
        .enumerate()
        .find(|&(_, b)| !(0x20..=0x7e).contains(&b))
    {
        return Err(format!(
            "the kernel command line has byte {b:#04x} at offset {i}: only printable ASCII (0x20-0x7e) reaches the kernel unchanged through systemd-stub 252 (it turns control characters and, on the handover path, non-ASCII into spaces)"
        ));
    }
    if let Some(max) = kernel_max {
        if cmdline.len() > max as usize {
            return Err(format!(
                "the kernel command line is {} bytes; this kernel takes at most {max} (its setup header's cmdline_size) and would silently cut the rest, roothash= included",
                cmdline.len()
            ));
        }
    }
    Ok(())
}

/// Checks `.uname` (the kernel release, `uname -r`). systemd 252 does not read it (253's ukify
/// and systemd-boot do); it is carried for tools that want the version without unpacking.
pub fn check_uname(uname: &str) -> Result<(), String> {
    if uname.is_empty() || uname.len() > 256 {
        return Err(format!(
            "the kernel release (.uname) must be 1 to 256 bytes, got {}",
            uname.len()
        ));
    }
    if !uname.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the kernel release (.uname) {uname:?} must be printable ASCII without spaces, like `uname -r`"
        ));
    }
    Ok(())
}

/// Checks the os-release text the way systemd-boot 252 reads it (`line_get_key_value` with "=":
/// lines split at \n or \r, blanks trimmed, `#` comments, one pair of double quotes removed).
/// systemd-boot lists a Type #2 entry only when `.osrel` names the OS (PRETTY_NAME, IMAGE_ID,
/// NAME or ID); without one the UKI is silently skipped. A NUL would end its parsing early.
pub fn check_osrel(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Err(
            "the os-release file is empty; systemd-boot 252 skips a UKI without .osrel".into(),
        );
    }
    if let Some(i) = data.iter().position(|&b| b == 0) {
        return Err(format!(
            "the os-release file has a NUL byte at offset {i}; systemd-boot 252 stops reading there"
        ));
    }
    let text =
        std::str::from_utf8(data).map_err(|e| format!("the os-release file is not UTF-8: {e}"))?;
    let named = text
        .split(['\n', '\r'])
        .map(|line| line.trim_matches([' ', '\t']))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .any(|(key, value)| {
            let value = value.trim_start_matches('=');
            matches!(key, "PRETTY_NAME" | "IMAGE_ID" | "NAME" | "ID") && !value.is_empty()
        });
    if !named {
        return Err("the os-release file sets none of PRETTY_NAME, IMAGE_ID, NAME, ID (non-empty): systemd-boot 252 would not list the UKI as a boot entry".into());
    }
    Ok(())
}

/// What the kernel's headers say, as far as the stub cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// The longest command line the kernel takes (setup header `cmdline_size`, boot protocol
    /// 2.06+; 255 before).
    pub cmdline_max: u32,
}

/// How many bytes of the kernel [`check_kernel`] needs: the setup header ends at 0x268 and the
/// PE headers of an EFI-stub bzImage sit before it.
pub const KERNEL_HEAD: usize = 4096;

const BOOT_FLAG_OFFSET: usize = 0x1fe;
const SETUP_MAGIC_OFFSET: usize = 0x202;
const SETUP_VERSION_OFFSET: usize = 0x206;
const RELOCATABLE_OFFSET: usize = 0x234;
const XLOADFLAGS_OFFSET: usize = 0x236;
const CMDLINE_SIZE_OFFSET: usize = 0x238;
const XLF_EFI_HANDOVER_64: u16 = 1 << 3;

/// Checks that `.linux` is a kernel systemd-stub 252 can start (`linux_exec` in linux.c and
/// linux_x86.c): either an x86-64 PE whose MajorImageVersion is at least 1 (the kernel's EFI stub
/// 1.0, Linux 5.8+, started with LoadImage/StartImage and handed the initrd through
/// LINUX_INITRD_MEDIA_GUID), or else a relocatable bzImage (boot protocol 2.11+) that supports the
/// 64-bit EFI handover protocol. `head` is the first [`KERNEL_HEAD`] bytes (or the whole file).
pub fn check_kernel(head: &[u8]) -> Result<KernelInfo, String> {
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let bzimage = u16_at(BOOT_FLAG_OFFSET) == Some(0xaa55)
        && head.get(SETUP_MAGIC_OFFSET..SETUP_MAGIC_OFFSET + 4) == Some(b"HdrS");
    let version = if bzimage {
        u16_at(SETUP_VERSION_OFFSET).unwrap_or(0)
    } else {
        0
    };
    let cmdline_max = if version >= 0x206 {
        u32_at(CMDLINE_SIZE_OFFSET).unwrap_or(255)
    } else {
        255
    };

    let stub_version = efi_stub_version(head);
    if matches!(stub_version, Ok(major) if major >= 1) {
        return Ok(KernelInfo { cmdline_max });
    }
    if !bzimage {
        let why = match stub_version {
            Ok(major) => format!("its PE MajorImageVersion is {major}"),
            Err(e) => e,
        };
        return Err(format!(
            "not a Linux kernel image systemd-stub 252 can start: {why}, and it has no bzImage setup header (0xAA55 at 0x1fe, \"HdrS\" at 0x202); give the vmlinuz (bzImage) with CONFIG_EFI_STUB, not vmlinux or an initrd"
        ));
    }
    // The EFI handover fallback (linux_x86.c).
    if version < 0x20b {
        return Err(format!(
            "the kernel's boot protocol is {}.{}: systemd-stub 252 needs 2.11 or newer (or an EFI stub with MajorImageVersion >= 1)",
            version >> 8,
            version & 0xff
        ));
    }
    if head.get(RELOCATABLE_OFFSET) != Some(&1) {
        return Err("the kernel is not relocatable: systemd-stub 252 cannot start it".into());
    }
    if version >= 0x20c && u16_at(XLOADFLAGS_OFFSET).unwrap_or(0) & XLF_EFI_HANDOVER_64 == 0 {
        return Err("the kernel supports neither the 64-bit EFI handover protocol nor LoadImage with LINUX_INITRD_MEDIA_GUID (MajorImageVersion >= 1): systemd-stub 252 cannot start it".into());
    }
    Ok(KernelInfo { cmdline_max })
}

/// The MajorImageVersion of an x86-64 PE image, as `pe_kernel_info` in systemd's pe.c reads it
/// (PE32 or PE32+ optional header, machine x86-64, at least one section).
fn efi_stub_version(head: &[u8]) -> Result<u16, String> {
    let dos = ImageDosHeader::parse(head).map_err(|_| "no 'MZ' PE signature".to_string())?;
    let offset = u64::from(dos.nt_headers_offset());
    let magic = object::read::pe::optional_header_magic(head)
        .map_err(|e| format!("no PE headers at {offset:#x} ({e})"))?;
    let (machine, sections, major) = match magic {
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => {
            let nt = head
                .read_at::<ImageNtHeaders64>(offset)
                .map_err(|_| "truncated PE headers".to_string())?;
            (
                nt.file_header().machine.get(LE),
                nt.file_header().number_of_sections.get(LE),
                nt.optional_header().major_image_version(),
            )
        }
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => {
            let nt = head
                .read_at::<ImageNtHeaders32>(offset)
                .map_err(|_| "truncated PE headers".to_string())?;
            (
                nt.file_header().machine.get(LE),
                nt.file_header().number_of_sections.get(LE),
                nt.optional_header().major_image_version(),
            )
        }
        other => return Err(format!("unknown PE optional header magic {other:#x}")),
    };
    if machine != pe::IMAGE_FILE_MACHINE_AMD64 || sections == 0 {
        return Err(format!(
            "a PE image for machine {:#06x} with {sections} sections, not an x86-64 kernel",
            machine.0
        ));
    }
    Ok(major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_rules() {
        assert!(check_cmdline("console=ttyS0 ro roothash=ab", Some(2047)).is_ok());
        assert!(check_cmdline("", None).unwrap_err().contains("empty"));
        assert!(check_cmdline("a\nb", None)
            .unwrap_err()
            .contains("0x0a at offset 1"));
        assert!(check_cmdline("quiet\0", None).unwrap_err().contains("0x00"));
        assert!(check_cmdline("name=é", None).unwrap_err().contains("0xc3"));
        let long = "x".repeat(2048);
        assert!(check_cmdline(&long, Some(2047))
            .unwrap_err()
            .contains("at most 2047"));
        assert!(check_cmdline(&long[..2047], Some(2047)).is_ok());
    }

    #[test]
    fn osrel_rules_follow_systemd_boot() {
        assert!(check_osrel(b"ID=icos\nVERSION_ID=1\n").is_ok());
        assert!(check_osrel(b"  PRETTY_NAME=\"IC OS\"\r\n").is_ok());
        assert!(check_osrel(b"# NAME=commented\nVERSION=1\n").is_err());
        assert!(check_osrel(b"VERSION_ID=1\n")
            .unwrap_err()
            .contains("none of"));
        assert!(check_osrel(b"ID=x\0").unwrap_err().contains("NUL"));
        assert!(check_osrel(b"").unwrap_err().contains("empty"));
        assert!(check_osrel(b"ID=\xff\n").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn uname_rules() {
        assert!(check_uname("6.1.0-50-amd64").is_ok());
        assert!(check_uname("6.1 x").is_err());
        assert!(check_uname("").is_err());
    }

    #[test]
    fn non_kernels_are_named() {
        let e = check_kernel(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(e.contains("no bzImage setup header"), "{e}");
        let e = check_kernel(&[0u8; 4096]).unwrap_err();
        assert!(e.contains("not a Linux kernel image"), "{e}");
    }
}
