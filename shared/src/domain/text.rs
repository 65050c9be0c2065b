//! Rules for the text people type: which characters are refused anywhere they could mislead, and the
//! form in which names are compared for uniqueness.

use unicode_normalization::UnicodeNormalization;

/// Characters that change how text around them is shown without being seen themselves: bidirectional
/// embeddings, overrides and isolates (the "right-to-left override" trick), and zero-width ones.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{061C}' // Arabic letter mark
            | '\u{180E}' // Mongolian vowel separator
            | '\u{FEFF}' // zero-width no-break space
    )
}

/// The first character that is a control (other than the line breaks and tab allowed when
/// `multiline`) or an invisible format character, if any.
pub fn forbidden_char(text: &str, multiline: bool) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
            || is_invisible_format(c)
    })
}

/// The problem to report for a field holding a forbidden character.
pub fn forbidden_problem(c: char) -> String {
    format!(
        "must not contain control or invisible formatting characters (found U+{:04X})",
        c as u32
    )
}

/// Letters of other scripts drawn exactly like a Latin lower-case letter in common fonts, folded to
/// that letter so `аlice` (Cyrillic а) cannot register beside `alice`. Deliberately small: only
/// letters that are indistinguishable, not merely similar.
fn latin_twin(c: char) -> char {
    match c {
        // Cyrillic
        'а' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'һ' => 'h',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'ү' => 'y',
        // Greek alpha
        'α' => 'a',
        other => other,
    }
}

/// The form in which usernames and emails are compared: Unicode NFKC (so fullwidth `ａｌｉｃｅ` and
/// other compatibility forms become `alice`), lower-cased (full Unicode lower case, then NFKC again),
/// with the cross-script look-alikes above folded to their Latin twins.
pub fn canonical(value: &str) -> String {
    let lowered: String = value.nfkc().collect::<String>().to_lowercase();
    lowered.nfkc().map(latin_twin).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_forms_case_and_look_alikes_collide() {
        for twin in [
            "ａｌｉｃｅ",
            "ALICE",
            "Alice",
            "аlice",
            "alіce",
            "ＡＬＩＣＥ",
        ] {
            assert_eq!(canonical(twin), "alice", "{twin}");
        }
        assert_eq!(canonical("小明的店"), "小明的店");
        assert_ne!(canonical("alicf"), "alice");
    }

    #[test]
    fn invisible_and_control_characters_are_found() {
        for bad in [
            "ad\u{202E}nim",
            "a\u{200B}b",
            "nul\0",
            "x\u{2066}y",
            "\u{FEFF}bom",
        ] {
            assert!(forbidden_char(bad, false).is_some(), "{bad:?}");
        }
        assert_eq!(forbidden_char("line one\nline two\tok", true), None);
        assert!(forbidden_char("line one\nline two", false).is_some());
        assert_eq!(forbidden_char("普通の名前 (2入)", false), None);
    }
}
