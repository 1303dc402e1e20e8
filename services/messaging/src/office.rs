//! Office Open XML packages (DOCX, XLSX) told apart by what they declare, not by the order of
//! their parts in the zip, which OOXML leaves to the writer: `_rels/.rels` names the main part,
//! `[Content_Types].xml` gives its content type, both found through the zip's central
//! directory.

use std::collections::HashMap;
use std::io::{Read, Seek};

use quick_xml::events::Event;

use crate::content::FileType;

/// The most bytes read of a package's declarations: far more than any real one takes, and
/// a bound on what a crafted (compressed) one can make us inflate.
const MAX_DECLARATION_BYTES: u64 = 1024 * 1024;

/// The relationship type of a package's main part, transitional and strict.
const OFFICE_DOCUMENT: [&str; 2] = [
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
];

/// The content type of each accepted package's main part.
const MAIN_PARTS: [(&str, FileType); 2] = [
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        FileType::Docx,
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        FileType::Xlsx,
    ),
];

/// The accepted Office type the zip `package` is, if it is one: its main part is present and
/// of a Word document's or an Excel workbook's content type (not a template, not one with
/// macros). Reads the central directory and the two declarations, nothing else.
pub fn package_type<R: Read + Seek>(package: R) -> Option<FileType> {
    let mut archive = zip::ZipArchive::new(package).ok()?;
    let relationships = declaration(&mut archive, "_rels/.rels")?;
    let main = main_part(&relationships)?;
    archive.index_for_name(&main)?;
    let content_types = declaration(&mut archive, "[Content_Types].xml")?;
    let content_type = content_type_of(&content_types, &main)?;
    MAIN_PARTS
        .into_iter()
        .find(|(declared, _)| *declared == content_type)
        .map(|(_, kind)| kind)
}

/// The text of the part `name`, at most [`MAX_DECLARATION_BYTES`] of it.
fn declaration<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, name: &str) -> Option<String> {
    let part = archive.by_name(name).ok()?;
    let mut text = String::new();
    part.take(MAX_DECLARATION_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The attributes of each element named `element` in `xml` (by local name), unescaped.
fn elements(xml: &str, element: &[u8]) -> Option<Vec<HashMap<String, String>>> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(tag) | Event::Empty(tag) if tag.local_name().as_ref() == element => {
                let mut attributes = HashMap::new();
                for attribute in tag.attributes() {
                    let attribute = attribute.ok()?;
                    let key =
                        String::from_utf8(attribute.key.local_name().as_ref().to_vec()).ok()?;
                    attributes.insert(key, attribute.unescape_value().ok()?.into_owned());
                }
                found.push(attributes);
            }
            Event::Eof => return Some(found),
            _ => {}
        }
    }
}

/// The zip entry name of the main part that the package's relationships name.
fn main_part(relationships: &str) -> Option<String> {
    let target = elements(relationships, b"Relationship")?
        .into_iter()
        .filter(|relationship| {
            relationship
                .get("TargetMode")
                .is_none_or(|mode| mode == "Internal")
        })
        .find(|relationship| {
            relationship
                .get("Type")
                .is_some_and(|kind| OFFICE_DOCUMENT.contains(&kind.as_str()))
        })?
        .remove("Target")?;
    // Relative to the package's root, which `_rels/.rels` describes.
    let name = target.trim_start_matches('/').trim_start_matches("./");
    (!name.is_empty() && !name.contains("..")).then(|| name.to_owned())
}

/// The content type `[Content_Types].xml` gives the part `name`: its override, else the
/// default of its extension (both compared as OPC does, without regard to case).
fn content_type_of(content_types: &str, name: &str) -> Option<String> {
    let part_name = format!("/{name}");
    let overrides = elements(content_types, b"Override")?;
    if let Some(declared) = overrides.into_iter().find(|entry| {
        entry
            .get("PartName")
            .is_some_and(|part| part.eq_ignore_ascii_case(&part_name))
    }) {
        return declared.get("ContentType").cloned();
    }
    let extension = name.rsplit_once('.')?.1;
    elements(content_types, b"Default")?
        .into_iter()
        .find(|entry| {
            entry
                .get("Extension")
                .is_some_and(|declared| declared.eq_ignore_ascii_case(extension))
        })?
        .remove("ContentType")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_part_is_the_office_document_relationship_s_target() {
        let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="a" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail" Target="docProps/thumbnail.jpeg"/><Relationship Id="b" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="/word/document2.xml"/></Relationships>"#;
        assert_eq!(main_part(rels).as_deref(), Some("word/document2.xml"));
        let escaping = rels.replace("/word/document2.xml", "../../etc/passwd");
        assert_eq!(main_part(&escaping), None);
        assert_eq!(main_part("<Relationships/>"), None);
        assert_eq!(main_part("not xml <"), None);
    }

    #[test]
    fn an_override_wins_over_the_extension_s_default_case_aside() {
        let types = r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="XML" ContentType="application/xml"/><Override PartName="/Word/Document.xml" ContentType="main&amp;co"/></Types>"#;
        assert_eq!(
            content_type_of(types, "word/document.xml").as_deref(),
            Some("main&co")
        );
        assert_eq!(
            content_type_of(types, "xl/workbook.xml").as_deref(),
            Some("application/xml")
        );
        assert_eq!(content_type_of(types, "word/document"), None);
    }

    #[test]
    fn what_is_no_zip_is_no_package() {
        assert_eq!(
            package_type(std::io::Cursor::new(b"PK\x03\x04 broken")),
            None
        );
        assert_eq!(package_type(std::io::Cursor::new(Vec::new())), None);
    }
}
