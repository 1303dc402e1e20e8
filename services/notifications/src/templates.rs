//! The text of notices: one handlebars template per kind and language, shipped in the binary
//! (`templates/<language>/<kind>.hbs`) and overridable from a folder named in config. A
//! template's first line is the e-mail subject; after an empty line comes the text, which is
//! the SMS and the e-mail's plain-text part; the HTML part is the same text rendered with
//! HTML escaping.
//!
//! What a template can say is limited by its context, [`NoticeContext`]: a date and a time,
//! a count, whether the reader acts for someone else, and the service's name and portal link
//! from config. There is no field that could carry a service type, a reason, a message, a care
//! unit, an address, a name or an identity number, so no template can leak one.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::Handlebars;
use serde::Serialize;

use crate::kind::{NoticeKind, Topic};
use crate::settings::Language;

/// The template of several notices sent as one.
const MERGED: &str = "merged";

macro_rules! language {
    ($lang:literal) => {
        [
            (
                $lang,
                "visit_completed",
                include_str!(concat!("../templates/", $lang, "/visit_completed.hbs")),
            ),
            (
                $lang,
                "visit_changed",
                include_str!(concat!("../templates/", $lang, "/visit_changed.hbs")),
            ),
            (
                $lang,
                "visit_cancelled",
                include_str!(concat!("../templates/", $lang, "/visit_cancelled.hbs")),
            ),
            (
                $lang,
                "visit_added",
                include_str!(concat!("../templates/", $lang, "/visit_added.hbs")),
            ),
            (
                $lang,
                "cancellation_confirmed",
                include_str!(concat!(
                    "../templates/",
                    $lang,
                    "/cancellation_confirmed.hbs"
                )),
            ),
            (
                $lang,
                "cancellation_failed",
                include_str!(concat!("../templates/", $lang, "/cancellation_failed.hbs")),
            ),
            (
                $lang,
                "proxy_granted",
                include_str!(concat!("../templates/", $lang, "/proxy_granted.hbs")),
            ),
            (
                $lang,
                "proxy_changed",
                include_str!(concat!("../templates/", $lang, "/proxy_changed.hbs")),
            ),
            (
                $lang,
                "proxy_ended",
                include_str!(concat!("../templates/", $lang, "/proxy_ended.hbs")),
            ),
            (
                $lang,
                "proxy_registered",
                include_str!(concat!("../templates/", $lang, "/proxy_registered.hbs")),
            ),
            (
                $lang,
                "message_reply",
                include_str!(concat!("../templates/", $lang, "/message_reply.hbs")),
            ),
            (
                $lang,
                "message_received",
                include_str!(concat!("../templates/", $lang, "/message_received.hbs")),
            ),
            (
                $lang,
                "merged",
                include_str!(concat!("../templates/", $lang, "/merged.hbs")),
            ),
        ]
    };
}

/// Every template shipped: (language, name, source).
const BUILT_IN: [[(&str, &str, &str); 13]; 3] = [language!("nb"), language!("nn"), language!("en")];

/// What the service says about itself in every notice (from config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// Who the notice is from, e.g. `Hjemmetjenesten i Ås`.
    pub service_name: String,
    /// Where to log in, e.g. `https://helsenorge.no`.
    pub portal_url: String,
    /// The municipality's time zone, for dates and times.
    pub zone: Tz,
}

/// Everything a template may use. Built only from a time, a count and a flag (and the
/// branding), by [`NoticeContext::new`].
#[derive(Debug, Clone, Serialize)]
pub struct NoticeContext {
    date: String,
    time: String,
    count: usize,
    on_behalf: bool,
    /// Whether any of the notices is about visits (a merged notice says what it merges).
    visits: bool,
    /// ... about proxies.
    proxies: bool,
    /// ... about messages (an answer, a receipt).
    messages: bool,
    service_name: String,
    portal_url: String,
}

impl NoticeContext {
    /// The context of the notices of `kinds` (one, or several sent as one), the first about
    /// `when`, to someone acting for the patient (`on_behalf`) or the patient themself.
    pub fn new(
        when: DateTime<Utc>,
        kinds: &[NoticeKind],
        on_behalf: bool,
        branding: &Branding,
    ) -> Self {
        let local = when.with_timezone(&branding.zone);
        let about = |topic: Topic| kinds.iter().any(|kind| kind.topic() == topic);
        Self {
            date: local.format("%d.%m.%Y").to_string(),
            time: local.format("%H:%M").to_string(),
            count: kinds.len(),
            on_behalf,
            visits: about(Topic::Visits),
            proxies: about(Topic::Proxies),
            messages: about(Topic::Messages),
            service_name: branding.service_name.clone(),
            portal_url: branding.portal_url.clone(),
        }
    }
}

/// A notice as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The e-mail subject.
    pub subject: String,
    /// The SMS, and the e-mail's plain text.
    pub text: String,
    /// The e-mail's HTML.
    pub html: String,
}

/// A template that could not be used, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification template {file}{}: {reason}", line.map(|line| format!(" line {line}")).unwrap_or_default())]
pub struct TemplateError {
    /// The file (or `built-in <language>/<name>`).
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// Every template, ready to render.
#[derive(Debug)]
pub struct Templates {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

fn key(language: Language, name: &str) -> String {
    format!("{}/{name}", language.as_stored())
}

impl Templates {
    /// The shipped templates, each replaced by `<folder>/<language>/<kind>.hbs` where such a
    /// file exists. Every template is checked by rendering it once, so a broken one is
    /// refused here rather than when a notice is sent.
    pub fn load(folder: Option<&Path>) -> Result<Self, TemplateError> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        for (language, name, built_in) in BUILT_IN.iter().flatten() {
            let language = Language::from_stored(language).map_err(|error| TemplateError {
                file: format!("built-in {language}/{name}"),
                line: None,
                reason: error.to_string(),
            })?;
            let (file, source) = match folder.map(|folder| override_path(folder, language, name)) {
                Some(path) if path.exists() => {
                    let source = std::fs::read_to_string(&path).map_err(|error| TemplateError {
                        file: path.display().to_string(),
                        line: None,
                        reason: error.to_string(),
                    })?;
                    (path.display().to_string(), source)
                }
                _ => (
                    format!("built-in {}", key(language, name)),
                    (*built_in).to_owned(),
                ),
            };
            for registry in [&mut text, &mut html] {
                registry
                    .register_template_string(&key(language, name), &source)
                    .map_err(|error| TemplateError {
                        file: file.clone(),
                        line: error.pos().map(|(line, _)| line),
                        reason: error.reason().to_string(),
                    })?;
            }
            let templates = Templates { text, html };
            let sample = NoticeContext::new(
                DateTime::UNIX_EPOCH,
                NoticeKind::ALL,
                true,
                &Branding {
                    service_name: "x".to_owned(),
                    portal_url: "x".to_owned(),
                    zone: chrono_tz::UTC,
                },
            );
            templates
                .render_named(language, name, &sample)
                .map_err(|mut error| {
                    error.file = file.clone();
                    error
                })?;
            (text, html) = (templates.text, templates.html);
        }
        Ok(Templates { text, html })
    }

    /// The notice of `kinds` (one, or several merged) in `language`.
    pub fn render(
        &self,
        language: Language,
        kinds: &[NoticeKind],
        context: &NoticeContext,
    ) -> Result<Rendered, TemplateError> {
        let name = match kinds {
            [one] => one.as_stored(),
            _ => MERGED,
        };
        self.render_named(language, name, context)
    }

    fn render_named(
        &self,
        language: Language,
        name: &str,
        context: &NoticeContext,
    ) -> Result<Rendered, TemplateError> {
        let name = key(language, name);
        let failed = |error: handlebars::RenderError| TemplateError {
            file: name.clone(),
            line: error.line_no,
            reason: error.to_string(),
        };
        let text = self.text.render(&name, context).map_err(failed)?;
        let html = self.html.render(&name, context).map_err(failed)?;
        let (subject, text) = split(&text).ok_or_else(|| no_subject(&name))?;
        let (_, html_body) = split(&html).ok_or_else(|| no_subject(&name))?;
        let paragraphs: String = html_body
            .split("\n\n")
            .map(|paragraph| format!("<p>{}</p>\n", paragraph.trim()))
            .collect();
        Ok(Rendered {
            subject: subject.to_owned(),
            text: text.to_owned(),
            html: format!(
                "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"></head><body>\n{paragraphs}</body></html>\n",
                language.as_stored()
            ),
        })
    }
}

fn override_path(folder: &Path, language: Language, name: &str) -> PathBuf {
    folder
        .join(language.as_stored())
        .join(format!("{name}.hbs"))
}

/// The subject line and the text after the empty line.
fn split(rendered: &str) -> Option<(&str, &str)> {
    let (subject, text) = rendered.split_once("\n\n")?;
    let subject = subject.trim();
    let text = text.trim();
    (!subject.is_empty() && !subject.contains('\n') && !text.is_empty()).then_some((subject, text))
}

fn no_subject(name: &str) -> TemplateError {
    TemplateError {
        file: name.to_owned(),
        line: Some(1),
        reason: "must be a subject line, an empty line, then the text".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branding() -> Branding {
        Branding {
            service_name: "Hjemmetjenesten i Ås".to_owned(),
            portal_url: "https://helsenorge.no".to_owned(),
            zone: chrono_tz::Europe::Oslo,
        }
    }

    #[test]
    fn every_kind_has_a_template_in_every_language_and_nothing_else_is_shipped() {
        for languages in BUILT_IN {
            let names: Vec<&str> = languages.iter().map(|(_, name, _)| *name).collect();
            let mut expected: Vec<&str> = NoticeKind::ALL
                .iter()
                .map(|kind| kind.as_stored())
                .collect();
            expected.push(MERGED);
            assert_eq!(names, expected);
        }
        assert_eq!(
            BUILT_IN.map(|languages| languages[0].0).to_vec(),
            Language::ALL
                .iter()
                .map(|language| language.as_stored())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_template_renders_in_gsm7_with_the_oslo_time_and_the_portal() {
        let templates = Templates::load(None).unwrap();
        // 07:30 UTC is 08:30 in Oslo in winter.
        let when = "2026-12-24T07:30:00Z".parse().unwrap();
        for language in Language::ALL {
            for kinds in NoticeKind::ALL
                .iter()
                .map(std::slice::from_ref)
                .chain([NoticeKind::ALL])
            {
                for on_behalf in [false, true] {
                    let context = NoticeContext::new(when, kinds, on_behalf, &branding());
                    let rendered = templates.render(*language, kinds, &context).unwrap();
                    let what = format!("{language:?} {kinds:?}");
                    assert!(
                        rendered.text.starts_with("Hjemmetjenesten i Ås: "),
                        "{what}: {}",
                        rendered.text
                    );
                    assert!(rendered.text.contains("https://helsenorge.no"), "{what}");
                    assert!(
                        rendered.text.contains("24.12.2026") || kinds.len() > 1,
                        "{what}"
                    );
                    assert_eq!(
                        homecare_sms::segments(&rendered.text).encoding,
                        homecare_sms::Encoding::Gsm7,
                        "{what}: {}",
                        rendered.text
                    );
                    assert!(homecare_sms::segments(&rendered.text).count <= 2, "{what}");
                    assert!(
                        rendered.html.contains("<p>Hjemmetjenesten i Ås: "),
                        "{what}"
                    );
                    assert!(
                        !rendered.subject.is_empty() && !rendered.subject.contains('{'),
                        "{what}"
                    );
                }
            }
        }
        let visit = templates
            .render(
                Language::Nb,
                &[NoticeKind::VisitChanged],
                &NoticeContext::new(when, &[NoticeKind::VisitChanged], false, &branding()),
            )
            .unwrap();
        assert_eq!(
            visit.text,
            "Hjemmetjenesten i Ås: Et besøk hos deg er flyttet til 24.12.2026 kl. 08:30. Logg inn på https://helsenorge.no for å se."
        );
        let merged = templates
            .render(
                Language::En,
                &[
                    NoticeKind::VisitChanged,
                    NoticeKind::VisitAdded,
                    NoticeKind::ProxyGranted,
                ],
                &NoticeContext::new(
                    when,
                    &[
                        NoticeKind::VisitChanged,
                        NoticeKind::VisitAdded,
                        NoticeKind::ProxyGranted,
                    ],
                    false,
                    &branding(),
                ),
            )
            .unwrap();
        assert_eq!(merged.subject, "3 new notices");
    }

    #[test]
    fn a_merged_notice_says_what_it_merges() {
        let templates = Templates::load(None).unwrap();
        let when = "2026-12-24T07:30:00Z".parse().unwrap();
        let text = |language, kinds: &[NoticeKind]| {
            let context = NoticeContext::new(when, kinds, false, &branding());
            templates.render(language, kinds, &context).unwrap().text
        };
        use NoticeKind::*;
        for (kinds, nb, en) in [
            (
                &[VisitChanged, VisitAdded][..],
                "om besøk.",
                "about visits.",
            ),
            (
                &[ProxyGranted, ProxyEnded][..],
                "om fullmakter.",
                "about proxies.",
            ),
            (
                &[MessageReply, MessageReply][..],
                "om meldinger.",
                "about messages.",
            ),
            (
                &[VisitChanged, MessageReply][..],
                "om besøk og meldinger.",
                "about visits and messages.",
            ),
            (
                &[ProxyChanged, MessageReply][..],
                "om fullmakter og meldinger.",
                "about proxies and messages.",
            ),
            (
                &[VisitChanged, ProxyGranted][..],
                "om besøk og fullmakter.",
                "about visits and proxies.",
            ),
            (
                &[VisitCompleted, ProxyGranted, MessageReply][..],
                "om besøk, fullmakter og meldinger.",
                "about visits, proxies and messages.",
            ),
        ] {
            let said = text(Language::Nb, kinds);
            assert!(
                said.contains(&format!("{} nye varsler {nb}", kinds.len())),
                "{said}"
            );
            let said = text(Language::En, kinds);
            assert!(
                said.contains(&format!("{} new notices {en}", kinds.len())),
                "{said}"
            );
            assert!(text(Language::Nn, kinds).contains("nye varsel om"));
        }
    }

    #[test]
    fn html_escapes_and_text_does_not() {
        let templates = Templates::load(None).unwrap();
        let branding = Branding {
            service_name: "Pleie & omsorg <Ås>".to_owned(),
            ..branding()
        };
        let rendered = templates
            .render(
                Language::Nb,
                &[NoticeKind::ProxyGranted],
                &NoticeContext::new(
                    DateTime::UNIX_EPOCH,
                    &[NoticeKind::ProxyGranted],
                    true,
                    &branding,
                ),
            )
            .unwrap();
        assert!(rendered.text.starts_with("Pleie & omsorg <Ås>: "));
        assert!(
            rendered.html.contains("Pleie &amp; omsorg &lt;Ås&gt;: "),
            "{}",
            rendered.html
        );
    }

    #[test]
    fn an_override_replaces_its_template_and_a_broken_one_is_refused_with_file_and_line() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("nb")).unwrap();
        let file = folder.path().join("nb").join("visit_added.hbs");
        std::fs::write(&file, "Nytt!\n\n{{service_name}}: nytt besøk {{date}}.\n").unwrap();
        let templates = Templates::load(Some(folder.path())).unwrap();
        let rendered = templates
            .render(
                Language::Nb,
                &[NoticeKind::VisitAdded],
                &NoticeContext::new(
                    DateTime::UNIX_EPOCH,
                    &[NoticeKind::VisitAdded],
                    false,
                    &branding(),
                ),
            )
            .unwrap();
        assert_eq!(
            rendered.text,
            "Hjemmetjenesten i Ås: nytt besøk 01.01.1970."
        );

        std::fs::write(&file, "Nytt!\n\n{{#if on_behalf}}\nunclosed {{date}\n").unwrap();
        let error = Templates::load(Some(folder.path())).unwrap_err();
        assert_eq!(error.file, file.display().to_string());
        assert!(error.line.is_some(), "{error}");

        // A field the context does not have (strict mode) is refused at load as well.
        std::fs::write(&file, "Nytt!\n\n{{service_name}}: {{service_type}}\n").unwrap();
        let error = Templates::load(Some(folder.path())).unwrap_err();
        assert_eq!(error.file, file.display().to_string());
        assert_eq!(error.line, Some(3), "{error}");

        std::fs::write(&file, "Only a subject line").unwrap();
        assert!(Templates::load(Some(folder.path())).is_err());
    }
}
