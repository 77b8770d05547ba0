//! A sanity check of ELF shared libraries before the system loader maps them: the loader maps
//! segments straight from the file, and a truncated file (an interrupted copy or build) makes
//! it touch pages past the end of the file, which kills the process with SIGBUS.

/// Where the segments and section headers of an ELF file claim to end, if `bytes` start like
/// one; `None` for anything else (the loader then explains what is wrong).
fn claimed_end(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 0x34 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |at: usize, size: usize| -> Option<u64> {
        let field = bytes.get(at..at + size)?;
        let mut value = 0u64;
        for i in 0..size {
            let byte = if little { field[size - 1 - i] } else { field[i] };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    let word = if wide { 8 } else { 4 };
    let (phoff, shoff) = if wide { (read(0x20, 8)?, read(0x28, 8)?) } else { (read(0x1C, 4)?, read(0x20, 4)?) };
    let at = if wide { 0x36 } else { 0x2A };
    let (phentsize, phnum, shentsize, shnum) = (read(at, 2)?, read(at + 2, 2)?, read(at + 4, 2)?, read(at + 6, 2)?);
    let mut end = shoff + shentsize * shnum;
    end = end.max(phoff + phentsize * phnum);
    for i in 0..phnum {
        let header = usize::try_from(phoff + i * phentsize).ok()?;
        // p_offset and p_filesz: after p_type (and p_flags on 64-bit).
        let (offset, filesz) = if wide {
            (read(header + 8, word)?, read(header + 32, word)?)
        } else {
            (read(header + 4, word)?, read(header + 16, word)?)
        };
        end = end.max(offset + filesz);
    }
    Some(end)
}

/// An error when the file at `path` is an ELF file shorter than its own headers say.
pub fn check_complete(path: &std::path::Path) -> Result<(), String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    match claimed_end(&bytes) {
        Some(end) if end > bytes.len() as u64 => Err(format!(
            "the file is truncated ({} bytes, its headers describe {end}); rebuild or copy it again",
            bytes.len()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_complete_and_its_truncation_is_not() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let end = claimed_end(&exe).expect("the test binary is an ELF file");
        assert!(end <= exe.len() as u64);
        assert!(claimed_end(&exe[..exe.len() / 2]).is_none_or(|end| end > (exe.len() / 2) as u64));
        assert_eq!(claimed_end(b"not an ELF file at all, just some text bytes here...."), None);
    }
}
