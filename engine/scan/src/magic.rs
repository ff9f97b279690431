//! A file's true type from its first bytes, whatever its name says.
//!
//! A fixed table of the signatures a mail gateway acts on (executables, scripts' containers,
//! archives, disk images, office and PDF documents, images); a few dozen comparisons on at most
//! the first 32 KiB (ISO 9660's signature sits at 0x8001). Hand-written rather than a crate's:
//! the gateway needs ISO and the executable families, and to say which types are archives it
//! opens — a table of its own keeps that list and the blocking list in one place.

/// A detected type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Windows PE/MS-DOS executable (exe, dll, scr, pif, cpl...).
    Pe,
    Elf,
    MachO,
    /// Windows shortcut.
    Lnk,
    /// MSI and legacy Office (OLE2 compound file).
    Ole2,
    Zip,
    Rar,
    SevenZip,
    Gzip,
    Bzip2,
    Xz,
    Cab,
    Arj,
    Iso,
    Pdf,
    Rtf,
    Png,
    Jpeg,
    Gif,
    /// Nothing known.
    Unknown,
}

impl FileType {
    pub fn name(self) -> &'static str {
        match self {
            FileType::Pe => "pe",
            FileType::Elf => "elf",
            FileType::MachO => "macho",
            FileType::Lnk => "lnk",
            FileType::Ole2 => "ole2",
            FileType::Zip => "zip",
            FileType::Rar => "rar",
            FileType::SevenZip => "7z",
            FileType::Gzip => "gzip",
            FileType::Bzip2 => "bzip2",
            FileType::Xz => "xz",
            FileType::Cab => "cab",
            FileType::Arj => "arj",
            FileType::Iso => "iso",
            FileType::Pdf => "pdf",
            FileType::Rtf => "rtf",
            FileType::Png => "png",
            FileType::Jpeg => "jpeg",
            FileType::Gif => "gif",
            FileType::Unknown => "unknown",
        }
    }

    /// Code that runs when opened.
    pub fn is_executable(self) -> bool {
        matches!(self, FileType::Pe | FileType::Elf | FileType::MachO | FileType::Lnk)
    }

    pub fn is_archive(self) -> bool {
        matches!(self, FileType::Zip | FileType::Rar | FileType::SevenZip | FileType::Gzip | FileType::Bzip2 | FileType::Xz | FileType::Cab | FileType::Arj)
    }

    pub fn is_image(self) -> bool {
        matches!(self, FileType::Png | FileType::Jpeg | FileType::Gif)
    }

    /// File name extensions that honestly carry this type (for the mismatch check).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Pe => &["exe", "dll", "scr", "pif", "cpl", "com", "sys", "ocx", "drv", "efi"],
            FileType::Elf => &["", "so", "bin", "elf", "run"],
            FileType::MachO => &["", "dylib", "bin"],
            FileType::Lnk => &["lnk"],
            FileType::Ole2 => &["doc", "xls", "ppt", "msi", "msg", "dot", "xlt", "pps", "vsd", "pub", "mpp"],
            FileType::Zip => &["zip", "docx", "xlsx", "pptx", "docm", "xlsm", "pptm", "odt", "ods", "odp", "jar", "apk", "epub", "xpi", "kmz", "ipa", "dotx", "xltx", "vsdx"],
            FileType::Rar => &["rar"],
            FileType::SevenZip => &["7z"],
            FileType::Gzip => &["gz", "tgz"],
            FileType::Bzip2 => &["bz2", "tbz", "tbz2"],
            FileType::Xz => &["xz", "txz"],
            FileType::Cab => &["cab"],
            FileType::Arj => &["arj"],
            FileType::Iso => &["iso", "img"],
            FileType::Pdf => &["pdf"],
            FileType::Rtf => &["rtf", "doc"],
            FileType::Png => &["png"],
            FileType::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            FileType::Gif => &["gif"],
            FileType::Unknown => &[],
        }
    }
}

/// The type of `data` by its leading bytes.
pub fn detect(data: &[u8]) -> FileType {
    let starts = |sig: &[u8]| data.starts_with(sig);
    if starts(b"MZ") {
        FileType::Pe
    } else if starts(b"\x7fELF") {
        FileType::Elf
    } else if starts(b"\xfe\xed\xfa\xce") || starts(b"\xfe\xed\xfa\xcf") || starts(b"\xce\xfa\xed\xfe") || starts(b"\xcf\xfa\xed\xfe") {
        FileType::MachO
    } else if starts(b"\x4c\x00\x00\x00\x01\x14\x02\x00") {
        FileType::Lnk
    } else if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        FileType::Ole2
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        FileType::Zip
    } else if starts(b"Rar!\x1a\x07") {
        FileType::Rar
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        FileType::SevenZip
    } else if starts(b"\x1f\x8b") {
        FileType::Gzip
    } else if starts(b"BZh") && data.len() > 3 && data[3].is_ascii_digit() {
        FileType::Bzip2
    } else if starts(b"\xfd7zXZ\x00") {
        FileType::Xz
    } else if starts(b"MSCF\x00\x00\x00\x00") {
        FileType::Cab
    } else if starts(b"\x60\xea") {
        FileType::Arj
    } else if starts(b"%PDF-") {
        FileType::Pdf
    } else if starts(b"{\\rtf") {
        FileType::Rtf
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        FileType::Png
    } else if starts(b"\xff\xd8\xff") {
        FileType::Jpeg
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        FileType::Gif
    } else if data.len() > 0x8006 && &data[0x8001..0x8006] == b"CD001" {
        FileType::Iso
    } else {
        FileType::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(detect(b"MZ\x90\x00"), FileType::Pe);
        assert_eq!(detect(b"PK\x03\x04rest"), FileType::Zip);
        assert_eq!(detect(b"%PDF-1.7"), FileType::Pdf);
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect(&iso), FileType::Iso);
        assert_eq!(detect(b""), FileType::Unknown);
        assert_eq!(detect(b"BZh"), FileType::Unknown);
        assert!(FileType::Pe.is_executable() && FileType::Zip.is_archive() && FileType::Gif.is_image());
    }
}
