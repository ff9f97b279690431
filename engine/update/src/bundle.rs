//! The update file: a signed header, then the root file system (squashfs) it carries.
//!
//! ```text
//! mxguard-update 1
//! version 0.2.0
//! root-bytes 187236352
//! root-sha256 9f86d0...
//! signature 5c1f...            (ed25519, hex, over the four lines above with their newlines)
//!                              (an empty line)
//! <root-bytes bytes of squashfs>
//! ```
//!
//! The signature covers the root's SHA-256 and length, so checking it and then hashing the root
//! (one pass over the file, nothing written yet) proves the whole file. Keys are ed25519 (ring):
//! the private key as PKCS#8 (`update.key`), the public key as 64 hex digits (`update.pub`), which
//! the image carries so that it accepts only updates signed by the key it was built with.
//!
//! It never writes anywhere but the output file it is given.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use ring::digest::{Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

const MAGIC: &str = "mxguard-update 1";
/// A header longer than this is not one of ours.
const HEADER_MAX: usize = 4096;

/// What a checked header says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: String,
    pub root_bytes: u64,
    pub root_sha256: String,
    /// Bytes before the root.
    pub offset: u64,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn signed_part(version: &str, root_bytes: u64, root_sha256: &str) -> String {
    format!("{MAGIC}\nversion {version}\nroot-bytes {root_bytes}\nroot-sha256 {root_sha256}\n")
}

/// SHA-256 of `len` bytes of `r`, or an error if it ends sooner.
pub fn sha256_of(r: &mut impl Read, len: u64) -> std::io::Result<String> {
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{left} bytes missing")));
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// Makes a key pair in `dir` (`update.key`, mode 0600, and `update.pub`); refuses to replace one.
pub fn keygen(dir: &Path) -> Result<(), String> {
    let key = dir.join("update.key");
    if key.exists() {
        return Err(format!("{}: a key is there already; keep it (every image built with it trusts it)", key.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| "no randomness for a key".to_string())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "the new key does not read back".to_string())?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    f.write_all(pkcs8.as_ref()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", key.display()))?;
    std::fs::write(dir.join("update.pub"), format!("{}\n", hex(pair.public_key().as_ref()))).map_err(|e| format!("{}/update.pub: {e}", dir.display()))
}

/// Writes the update file `out`: `root` (a squashfs) signed with the key in `dir`.
pub fn sign(dir: &Path, root: &Path, version: &str, out: &Path) -> Result<(), String> {
    if version.is_empty() || version.contains(char::is_whitespace) {
        return Err(format!("version {version:?}: one word"));
    }
    let key = dir.join("update.key");
    let pkcs8 = std::fs::read(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| format!("{}: not an ed25519 PKCS#8 key", key.display()))?;
    let mut f = File::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let len = f.metadata().map_err(|e| format!("{}: {e}", root.display()))?.len();
    let sum = sha256_of(&mut f, len).map_err(|e| format!("{}: {e}", root.display()))?;
    let head = signed_part(version, len, &sum);
    let sig = pair.sign(head.as_bytes());
    let tmp = out.with_extension("partial");
    let mut w = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut f = File::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
    w.write_all(format!("{head}signature {}\n\n", hex(sig.as_ref())).as_bytes())
        .and_then(|_| std::io::copy(&mut f, &mut w).map(|_| ()))
        .and_then(|_| w.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Reads and checks the header of `r` against `public_key` (hex); the root is not read.
pub fn read_header(r: &mut impl BufRead, public_key: &str) -> Result<Header, String> {
    let mut lines = Vec::new();
    let mut offset = 0usize;
    loop {
        let mut line = String::new();
        let n = r.take((HEADER_MAX - offset) as u64).read_line(&mut line).map_err(|e| e.to_string())?;
        offset += n;
        if n == 0 || !line.ends_with('\n') {
            return Err("not an mxguard update file (no header)".into());
        }
        if line == "\n" {
            break;
        }
        lines.push(line.trim_end_matches('\n').to_string());
    }
    let field = |i: usize, name: &str| -> Result<String, String> {
        lines.get(i).and_then(|l| l.strip_prefix(name)).and_then(|v| v.strip_prefix(' ')).map(str::to_string).ok_or_else(|| format!("not an mxguard update file (line {} is not {name})", i + 1))
    };
    if lines.first().map(String::as_str) != Some(MAGIC) || lines.len() != 5 {
        return Err("not an mxguard update file (format 1)".into());
    }
    let version = field(1, "version")?;
    let root_bytes: u64 = field(2, "root-bytes")?.parse().map_err(|_| "root-bytes is not a number".to_string())?;
    let root_sha256 = field(3, "root-sha256")?;
    let sig = unhex(&field(4, "signature")?).ok_or("the signature is not hex")?;
    let key = unhex(public_key.trim()).filter(|k| k.len() == 32).ok_or("the image's public key is not 64 hex digits")?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(signed_part(&version, root_bytes, &root_sha256).as_bytes(), &sig)
        .map_err(|_| "the signature does not verify with this image's key: refused".to_string())?;
    Ok(Header { version, root_bytes, root_sha256, offset: offset as u64 })
}

/// Checks the whole file: the header's signature, then the root's length and SHA-256.
pub fn verify(path: &Path, public_key: &str) -> Result<Header, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let total = f.metadata().map_err(|e| e.to_string())?.len();
    let mut r = BufReader::new(f);
    let h = read_header(&mut r, public_key).map_err(|e| format!("{}: {e}", path.display()))?;
    if total != h.offset + h.root_bytes {
        return Err(format!("{}: {} bytes where the header says {}: truncated or padded", path.display(), total, h.offset + h.root_bytes));
    }
    let sum = sha256_of(&mut r, h.root_bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if sum != h.root_sha256 {
        return Err(format!("{}: the root's SHA-256 is {sum}, the signed header says {}: refused", path.display(), h.root_sha256));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mxguard-update-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_signed_file_verifies_and_every_change_is_refused() {
        let d = tmpdir("sign");
        keygen(&d.join("key")).unwrap();
        assert!(keygen(&d.join("key")).is_err(), "an existing key is never replaced");
        let root: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(d.join("root"), &root).unwrap();
        sign(&d.join("key"), &d.join("root"), "0.2.0", &d.join("u")).unwrap();
        let public = std::fs::read_to_string(d.join("key/update.pub")).unwrap();
        let h = verify(&d.join("u"), &public).unwrap();
        assert_eq!((h.version.as_str(), h.root_bytes), ("0.2.0", root.len() as u64));
        let good = std::fs::read(d.join("u")).unwrap();
        // Every single flipped byte, header or root, is refused (the root sampled).
        let positions: Vec<usize> = (0..h.offset as usize).chain((h.offset as usize..good.len()).step_by(4999)).collect();
        for i in positions {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(d.join("bad"), &bad).unwrap();
            assert!(verify(&d.join("bad"), &public).is_err(), "byte {i} flipped and accepted");
        }
        // Truncated, padded, or signed by another key: refused.
        std::fs::write(d.join("bad"), &good[..good.len() - 1]).unwrap();
        assert!(verify(&d.join("bad"), &public).is_err());
        std::fs::write(d.join("bad"), [&good[..], b"x"].concat()).unwrap();
        assert!(verify(&d.join("bad"), &public).is_err());
        keygen(&d.join("other")).unwrap();
        let other = std::fs::read_to_string(d.join("other/update.pub")).unwrap();
        assert!(verify(&d.join("u"), &other).unwrap_err().contains("does not verify"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
