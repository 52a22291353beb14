//! Just enough of the zip format for an export archive: deflated files, no directories, no
//! zip64 (an export holds aggregates, far under 4 GiB), written to a temporary file and
//! renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::DeflateEncoder;
use stratus_fhir::writer::AtomicFile;

use crate::LibraryError;

/// Writes `dest` holding each of `files` under its file name.
pub fn write(dest: &Path, files: &[PathBuf]) -> Result<(), LibraryError> {
    let fail = |e: &dyn std::fmt::Display| LibraryError::Usage(format!("{}: {e}", dest.display()));
    let mut out = AtomicFile::create(dest).map_err(|e| fail(&e))?;
    let mut central = Vec::new();
    let mut offset: u32 = 0;
    let too_big = || LibraryError::Usage(format!("{}: over 4 GiB", dest.display()));
    for f in files {
        let data = std::fs::read(f).map_err(|e| LibraryError::io(f, e))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        let crc = crc.sum();
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&data).map_err(|e| fail(&e))?;
        let packed = enc.finish().map_err(|e| fail(&e))?;
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let packed_size = u32::try_from(packed.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        // DOS time and date: 1980-01-01 00:00, so that the same export zips the same.
        let (time, date) = (0u16, 0x21u16);
        let mut local = Vec::new();
        local.extend(0x0403_4b50u32.to_le_bytes());
        local.extend(20u16.to_le_bytes()); // version needed
        local.extend(0x0800u16.to_le_bytes()); // UTF-8 names
        local.extend(8u16.to_le_bytes()); // deflate
        local.extend(time.to_le_bytes());
        local.extend(date.to_le_bytes());
        local.extend(crc.to_le_bytes());
        local.extend(packed_size.to_le_bytes());
        local.extend(size.to_le_bytes());
        local.extend(name_len.to_le_bytes());
        local.extend(0u16.to_le_bytes());
        local.extend(name.as_bytes());
        out.write_all(&local).map_err(|e| fail(&e))?;
        out.write_all(&packed).map_err(|e| fail(&e))?;

        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // version made by
        central.extend(20u16.to_le_bytes());
        central.extend(0x0800u16.to_le_bytes());
        central.extend(8u16.to_le_bytes());
        central.extend(time.to_le_bytes());
        central.extend(date.to_le_bytes());
        central.extend(crc.to_le_bytes());
        central.extend(packed_size.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend(name_len.to_le_bytes());
        central.extend([0u8; 8]); // extra, comment, disk, internal attributes
        central.extend(0u32.to_le_bytes()); // external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
        offset = u32::try_from(local.len() + packed.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(too_big)?;
    }
    let count = u16::try_from(files.len()).map_err(|_| too_big())?;
    let central_len = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.write_all(&central).map_err(|e| fail(&e))?;
    let mut end = Vec::new();
    end.extend(0x0605_4b50u32.to_le_bytes());
    end.extend([0u8; 4]); // disk numbers
    end.extend(count.to_le_bytes());
    end.extend(count.to_le_bytes());
    end.extend(central_len.to_le_bytes());
    end.extend(offset.to_le_bytes());
    end.extend(0u16.to_le_bytes());
    out.write_all(&end).map_err(|e| fail(&e))?;
    out.commit().map_err(|e| fail(&e))?;
    Ok(())
}
