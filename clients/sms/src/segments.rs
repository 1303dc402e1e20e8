//! How many SMS segments a text costs. A text that fits the GSM 03.38 alphabet (which has
//! æ, ø, å, Æ, Ø, Å and é) goes as 7-bit characters, 160 in one segment or 153 per segment
//! when split; anything else (an emoji, a typographic quote) makes the whole text UCS-2,
//! 70 in one segment or 67 per segment.

/// The GSM 03.38 basic character set, in code order.
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Characters reached through the escape code: two septets each.
const EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// How a text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38, 7 bits per character.
    Gsm7,
    /// UCS-2 (UTF-16 code units), 16 bits per character.
    Ucs2,
}

/// What a text costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// How it is encoded.
    pub encoding: Encoding,
    /// Characters as the encoding counts them (septets, or UTF-16 units).
    pub units: usize,
    /// Segments sent.
    pub count: usize,
}

/// Counts the segments of `text`.
pub fn segments(text: &str) -> Segments {
    let gsm_units = text.chars().try_fold(0usize, |units, c| {
        if BASIC.contains(c) {
            Some(units + 1)
        } else if EXTENSION.contains(c) {
            Some(units + 2)
        } else {
            None
        }
    });
    let (encoding, units, single, per_part) = match gsm_units {
        Some(units) => (Encoding::Gsm7, units, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let count = if units <= single {
        1
    } else {
        units.div_ceil(per_part)
    };
    Segments {
        encoding,
        units,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norwegian_letters_are_gsm7_and_an_emoji_is_not() {
        let norwegian = segments("Besøket ditt på Ærøy er endret. Åpne Økonomi.");
        assert_eq!(norwegian.encoding, Encoding::Gsm7);
        assert_eq!(norwegian.count, 1);
        let emoji = segments("Besøket ditt er endret 🙂");
        assert_eq!(emoji.encoding, Encoding::Ucs2);
        // The emoji is two UTF-16 units.
        assert_eq!(emoji.units, "Besøket ditt er endret ".len() - 1 + 2);
        assert_eq!(segments("“quoted”").encoding, Encoding::Ucs2);
    }

    #[test]
    fn segment_limits_are_160_153_70_and_67() {
        assert_eq!(segments(&"a".repeat(160)).count, 1);
        assert_eq!(segments(&"a".repeat(161)).count, 2);
        assert_eq!(segments(&"a".repeat(306)).count, 2);
        assert_eq!(segments(&"a".repeat(307)).count, 3);
        assert_eq!(segments(&"ø".repeat(70)).count, 1);
        assert_eq!(segments(&format!("🙂{}", "a".repeat(68))).count, 1);
        assert_eq!(segments(&format!("🙂{}", "a".repeat(69))).count, 2);
        assert_eq!(segments(&"€".repeat(80)).units, 160);
        assert_eq!(segments(&"€".repeat(81)).count, 2);
    }
}
