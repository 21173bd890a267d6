//! Serves components built against a WASI 0.3 release candidate that is the same interface
//! as WASI 0.3.0: their top-level import and export names are renamed to `@0.3.0` first.

use std::borrow::Cow;
use wasmparser::{BinaryReader, ComponentExport, ComponentImport, FromReader, SectionLimited};

/// Release candidates whose interfaces are WASI 0.3.0's (what current SDKs emit). Others
/// differ and are refused by the linker; [`unsupported_release_candidate`] names them.
const SAME_AS_0_3_0: &[&str] = &["0.3.0-rc-2026-03-15"];

const IMPORT_SECTION: u8 = 10;
const EXPORT_SECTION: u8 = 11;

/// `wasm` with every top-level `wasi:…@<candidate>` import and export renamed to
/// `@0.3.0`, or unchanged (borrowed) if it has none. Nested components are left alone:
/// their names are matched within the component, not by the host.
pub fn rename_release_candidates(wasm: &[u8]) -> Cow<'_, [u8]> {
    // Most components name no candidate at all: nothing to parse.
    if !SAME_AS_0_3_0
        .iter()
        .any(|version| contains(wasm, format!("@{version}").as_bytes()))
    {
        return Cow::Borrowed(wasm);
    }
    match try_rename(wasm) {
        Some(renamed) => Cow::Owned(renamed),
        None => Cow::Borrowed(wasm),
    }
}

/// A top-level import of `wasm` from a WASI 0.3 release candidate Kite does not serve.
pub fn unsupported_release_candidate<'a>(
    mut import_names: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    import_names.find(|name| name.starts_with("wasi:") && name.contains("@0.3.0-rc-"))
}

/// The release candidates served as WASI 0.3.0, for error messages.
pub fn served_release_candidates() -> &'static [&'static str] {
    SAME_AS_0_3_0
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `name` with a served candidate's version replaced by `0.3.0`, or, where the component
/// also names that interface at `0.3.0` (Spin's Python SDK imports both), by the first
/// `0.3.N` it does not name: the linker matches any 0.3 patch version to 0.3.0.
fn renamed(name: &str, taken: &[String]) -> Option<String> {
    if !name.starts_with("wasi:") {
        return None;
    }
    let (interface, version) = name.rsplit_once('@')?;
    if !SAME_AS_0_3_0.contains(&version) {
        return None;
    }
    (0..)
        .map(|patch| format!("{interface}@0.3.{patch}"))
        .find(|candidate| !taken.iter().any(|name| name == candidate))
}

/// Every top-level import and export name of the component.
fn top_level_names(
    wasm: &[u8],
    sections: &[(u8, usize, std::ops::Range<usize>)],
) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for (id, _, range) in sections {
        let reader = BinaryReader::new(&wasm[range.clone()], range.start);
        match *id {
            IMPORT_SECTION => {
                for import in SectionLimited::<ComponentImport>::new(reader).ok()? {
                    names.push(import.ok()?.name.name.to_string());
                }
            }
            EXPORT_SECTION => {
                for export in SectionLimited::<ComponentExport>::new(reader).ok()? {
                    names.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(names)
}

/// The sections of a component, each as (id, where it starts, contents range), at the top
/// level only.
fn sections(wasm: &[u8]) -> Option<Vec<(u8, usize, std::ops::Range<usize>)>> {
    // A component: magic, then version 0x0d and layer 1.
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" || wasm[4..8] != [0x0d, 0, 1, 0] {
        return None;
    }
    let mut at = 8;
    let mut sections = Vec::new();
    while at < wasm.len() {
        let id = wasm[at];
        let (size, len) = read_u32(&wasm[at + 1..])?;
        let start = at + 1 + len;
        let end = start.checked_add(size as usize)?;
        if end > wasm.len() {
            return None;
        }
        sections.push((id, at, start..end));
        at = end;
    }
    Some(sections)
}

fn try_rename(wasm: &[u8]) -> Option<Vec<u8>> {
    let sections = sections(wasm)?;
    let taken = top_level_names(wasm, &sections)?;
    let mut out: Option<Vec<u8>> = None;
    let mut copied_to = 0;
    for (id, header_start, range) in sections {
        let rewritten = match id {
            IMPORT_SECTION => rewrite_entries::<ComponentImport>(wasm, range.clone(), &taken)?,
            EXPORT_SECTION => rewrite_entries::<ComponentExport>(wasm, range.clone(), &taken)?,
            _ => None,
        };
        let Some(contents) = rewritten else { continue };
        let out = out.get_or_insert_with(|| Vec::with_capacity(wasm.len()));
        // Everything before this section's id byte, then the section anew.
        out.extend_from_slice(&wasm[copied_to..header_start]);
        out.push(id);
        write_u32(out, contents.len() as u32);
        out.extend_from_slice(&contents);
        copied_to = range.end;
    }
    let mut out = out?;
    out.extend_from_slice(&wasm[copied_to..]);
    Some(out)
}

/// The section's contents with release-candidate names renamed; `None` inside `Some`
/// when nothing needed renaming; outer `None` if the section cannot be read.
fn rewrite_entries<'a, T: FromReader<'a>>(
    wasm: &'a [u8],
    range: std::ops::Range<usize>,
    taken: &[String],
) -> Option<Option<Vec<u8>>> {
    let reader = BinaryReader::new(&wasm[range.clone()], range.start);
    let entries = SectionLimited::<T>::new(reader).ok()?;
    let count = entries.count();
    // The count is the file's word, not yet checked: an entry takes at least two bytes.
    let mut starts = Vec::with_capacity((count as usize).min(range.len() / 2));
    for entry in entries.into_iter_with_offsets() {
        let (offset, _) = entry.ok()?;
        starts.push(offset);
    }
    let mut contents = Vec::with_capacity(range.len() + 16);
    let mut changed = false;
    write_u32(&mut contents, count);
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(range.end);
        let entry = &wasm[start..end];
        // A plain name: 0x00 (or the older 0x01), its length, its bytes, then the rest.
        let replacement = match entry.first() {
            Some(0x00 | 0x01) => {
                let (len, len_bytes) = read_u32(&entry[1..])?;
                let name_start = 1 + len_bytes;
                let name_end = name_start.checked_add(len as usize)?;
                let name = std::str::from_utf8(entry.get(name_start..name_end)?).ok()?;
                renamed(name, taken).map(|new| (new, name_end))
            }
            _ => None,
        };
        match replacement {
            Some((new, rest)) => {
                changed = true;
                contents.push(0x00);
                write_u32(&mut contents, new.len() as u32);
                contents.extend_from_slice(new.as_bytes());
                contents.extend_from_slice(&entry[rest..]);
            }
            None => contents.extend_from_slice(entry),
        }
    }
    Some(changed.then_some(contents))
}

fn read_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(version: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
                (import "wasi:clocks/monotonic-clock@{version}" (instance))
                (import "my:own/thing@{version}" (instance))
                (core module $m (func (export "f") (result i32) i32.const 1))
                (core instance $i (instantiate $m))
                (func $f (result u32) (canon lift (core func $i "f")))
                (instance $e (export "f" (func $f)))
                (export "wasi:http/handler@{version}" (instance $e)))"#
        ))
        .unwrap()
    }

    fn names(wasm: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload.unwrap() {
                wasmparser::Payload::ComponentImportSection(s) => {
                    names.extend(s.into_iter().map(|i| i.unwrap().name.name.to_string()))
                }
                wasmparser::Payload::ComponentExportSection(s) => {
                    names.extend(s.into_iter().map(|e| e.unwrap().name.name.to_string()))
                }
                _ => {}
            }
        }
        names
    }

    #[test]
    fn a_served_candidate_becomes_0_3_0_and_stays_valid() {
        let wasm = component("0.3.0-rc-2026-03-15");
        let renamed = rename_release_candidates(&wasm);
        assert!(matches!(renamed, Cow::Owned(_)));
        assert_eq!(
            names(&renamed),
            [
                "wasi:clocks/monotonic-clock@0.3.0",
                "my:own/thing@0.3.0-rc-2026-03-15",
                "wasi:http/handler@0.3.0"
            ]
        );
        let mut validator = wasmparser::Validator::new();
        validator.validate_all(&renamed).unwrap();
    }

    #[test]
    fn a_candidate_imported_beside_0_3_0_takes_the_next_patch_version() {
        let wasm = wat::parse_str(
            r#"(component
                (import "wasi:clocks/monotonic-clock@0.3.0-rc-2026-03-15" (instance))
                (import "wasi:clocks/monotonic-clock@0.3.0" (instance))
                (import "wasi:clocks/monotonic-clock@0.3.1" (instance)))"#,
        )
        .unwrap();
        let renamed = rename_release_candidates(&wasm);
        assert_eq!(
            names(&renamed),
            [
                "wasi:clocks/monotonic-clock@0.3.2",
                "wasi:clocks/monotonic-clock@0.3.0",
                "wasi:clocks/monotonic-clock@0.3.1"
            ]
        );
        wasmparser::Validator::new().validate_all(&renamed).unwrap();
    }

    #[test]
    fn other_versions_are_left_alone() {
        for version in ["0.3.0", "0.2.6", "0.3.0-rc-2026-01-06"] {
            let wasm = component(version);
            assert!(matches!(rename_release_candidates(&wasm), Cow::Borrowed(_)));
        }
        let core_module = wat::parse_str("(module)").unwrap();
        assert!(matches!(
            rename_release_candidates(&core_module),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_lying_entry_count_neither_allocates_nor_panics() {
        // An import section of five bytes claiming 2^32 - 1 entries, in a file that names
        // a served candidate (so that it is parsed).
        let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        wasm.extend_from_slice(&[10, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        wasm.extend_from_slice(&[0, 20]);
        wasm.extend_from_slice(b"@0.3.0-rc-2026-03-15");
        assert!(matches!(rename_release_candidates(&wasm), Cow::Borrowed(_)));
        for cut in 0..wasm.len() {
            let _ = rename_release_candidates(&wasm[..cut]);
        }
    }

    #[test]
    fn an_unsupported_candidate_is_named() {
        let names = [
            "wasi:cli/stdout@0.3.0",
            "wasi:http/types@0.3.0-rc-2026-01-06",
        ];
        assert_eq!(
            unsupported_release_candidate(names.into_iter()),
            Some("wasi:http/types@0.3.0-rc-2026-01-06")
        );
    }
}
