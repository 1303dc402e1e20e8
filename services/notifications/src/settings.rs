//! A citizen's notification settings as plain values, checked once when they arrive.

use homecare_core::status::FieldViolations;
use homecare_proto::notifications::v1 as pb;

use crate::kind::Channel;

/// Where a citizen wants to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// Nowhere.
    None,
    /// By SMS.
    Sms,
    /// By e-mail.
    Email,
    /// By both.
    SmsAndEmail,
}

homecare_core::stored_enum!(Channels, "notification channels", pb::Channels, {
    None => "none", None;
    Sms => "sms", Sms;
    Email => "email", Email;
    SmsAndEmail => "sms_and_email", SmsAndEmail;
});

impl Channels {
    /// The channels chosen.
    pub fn chosen(self) -> &'static [Channel] {
        match self {
            Channels::None => &[],
            Channels::Sms => &[Channel::Sms],
            Channels::Email => &[Channel::Email],
            Channels::SmsAndEmail => &[Channel::Sms, Channel::Email],
        }
    }
}

/// The language of notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Norwegian Bokmål, the default.
    #[default]
    Nb,
    /// Norwegian Nynorsk.
    Nn,
    /// English.
    En,
}

homecare_core::stored_enum!(Language, "notification language", pb::Language, {
    Nb => "nb", Nb;
    Nn => "nn", Nn;
    En => "en", En;
});

impl Language {
    /// From a request: unspecified is Bokmål; an unknown number is refused.
    pub fn from_request(value: i32) -> Result<Self, &'static str> {
        match pb::Language::try_from(value) {
            Ok(pb::Language::Unspecified) => Ok(Language::Nb),
            _ => Language::from_proto(value),
        }
    }
}

/// A phone number SMS can be sent to, in E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

/// The longest phone number accepted as typed.
const MAX_PHONE_CHARS: usize = 32;

impl PhoneNumber {
    /// Reads a number as a person types it: E.164, or a Norwegian number with or without
    /// +47 (spaces allowed).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        const BAD: &str = "is not a phone number (E.164, or a Norwegian number)";
        if text.chars().count() > MAX_PHONE_CHARS {
            return Err(BAD);
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
        {
            return Err(BAD);
        }
        let number =
            phonenumber::parse(Some(phonenumber::country::Id::NO), text).map_err(|_| BAD)?;
        if !phonenumber::is_valid(&number) {
            return Err(BAD);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// A number already stored (E.164).
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    /// E.164.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address that mail can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

/// The longest address SMTP allows.
const MAX_EMAIL_CHARS: usize = 254;

impl EmailAddress {
    /// Reads an address.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        const BAD: &str = "is not an e-mail address";
        if text.len() > MAX_EMAIL_CHARS || !homecare_email::is_address(text) {
            return Err(BAD);
        }
        Ok(Self(text.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A citizen's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to tell them.
    pub channels: Channels,
    /// Their phone number, if given.
    pub phone: Option<PhoneNumber>,
    /// Their e-mail address, if given.
    pub email: Option<EmailAddress>,
    /// The language of their notices.
    pub language: Language,
}

impl Settings {
    /// Where notices go on `channel`, if anywhere.
    pub fn contact(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Sms => self.phone.as_ref().map(PhoneNumber::as_str),
            Channel::Email => self.email.as_ref().map(EmailAddress::as_str),
        }
    }
}

impl TryFrom<&pb::UpdateNotificationSettingsRequest> for Settings {
    type Error = FieldViolations;

    fn try_from(request: &pb::UpdateNotificationSettingsRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let channels = violations.check("channels", Channels::from_proto(request.channels));
        let phone = violations.check(
            "phone_number",
            optional(&request.phone_number, PhoneNumber::parse),
        );
        let email = violations.check(
            "email_address",
            optional(&request.email_address, EmailAddress::parse),
        );
        let language = violations.check("language", Language::from_request(request.language));
        if let (Some(channels), Some(phone), Some(email)) = (channels, &phone, &email) {
            for channel in channels.chosen() {
                match channel {
                    Channel::Sms if phone.is_none() => {
                        violations.add("phone_number", "is required to be told by SMS");
                    }
                    Channel::Email if email.is_none() => {
                        violations.add("email_address", "is required to be told by e-mail");
                    }
                    _ => {}
                }
            }
        }
        let (channels, phone, email, language) =
            homecare_core::all_checked!(violations; channels, phone, email, language)?;
        Ok(Settings {
            channels,
            phone,
            email,
            language,
        })
    }
}

fn optional<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<Option<T>, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norwegian_numbers_are_accepted_as_typed_and_stored_in_e164() {
        for typed in [
            "91234567",
            "912 34 567",
            "+4791234567",
            "+47 912 34 567",
            "004791234567",
        ] {
            assert_eq!(
                PhoneNumber::parse(typed).map(|n| n.0),
                Ok("+4791234567".to_owned()),
                "{typed}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+46701234567").map(|n| n.0),
            Ok("+46701234567".to_owned())
        );
        for bad in [
            "1234",
            "+47 1234",
            "nine",
            "+4791234567\u{202e}",
            "9123456789012345678901234567890123",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(EmailAddress::parse("kari.nordmann@example.no").is_ok());
        for bad in ["kari", "kari@", "@example.no", "kari nordmann@example.no"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(EmailAddress::parse(&format!("{}@example.no", "a".repeat(250))).is_err());
    }

    fn request(
        channels: pb::Channels,
        phone: &str,
        email: &str,
    ) -> pb::UpdateNotificationSettingsRequest {
        pb::UpdateNotificationSettingsRequest {
            channels: channels as i32,
            phone_number: phone.to_owned(),
            email_address: email.to_owned(),
            language: 0,
        }
    }

    fn fields(result: Result<Settings, FieldViolations>) -> Vec<String> {
        result.unwrap_err().fields()
    }

    #[test]
    fn a_chosen_channel_needs_its_contact_and_each_bad_field_is_named() {
        assert_eq!(
            fields(Settings::try_from(&request(pb::Channels::Sms, "", ""))),
            ["phone_number"]
        );
        assert_eq!(
            fields(Settings::try_from(&request(
                pb::Channels::SmsAndEmail,
                "",
                ""
            ))),
            ["phone_number", "email_address"]
        );
        assert_eq!(
            fields(Settings::try_from(&request(
                pb::Channels::Unspecified,
                "12",
                "x"
            ))),
            ["channels", "phone_number", "email_address"]
        );
        let settings =
            Settings::try_from(&request(pb::Channels::Email, "", "kari@example.no")).unwrap();
        assert_eq!(settings.language, Language::Nb);
        assert_eq!(settings.contact(Channel::Email), Some("kari@example.no"));
        assert_eq!(settings.contact(Channel::Sms), None);
        let none = Settings::try_from(&request(pb::Channels::None, "", "")).unwrap();
        assert!(none.channels.chosen().is_empty());
    }
}
