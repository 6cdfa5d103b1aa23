//! Folding Vietnamese text for accent- and case-insensitive search.
//!
//! Each character folds to exactly one character (lowercase, marks removed, `đ`/`Đ` to `d`,
//! which have no Unicode decomposition), so a position in folded text is the same position in
//! the original: snippets are cut from the original with offsets found in the folded text.

use unicode_normalization::UnicodeNormalization;

/// Characters below this fold through a table built once (Latin, combining marks and the
/// Vietnamese block U+1EA0-U+1EF9 are all below it).
const TABLE_END: u32 = 0x2000;

fn slow_fold(c: char) -> char {
    match c {
        // Đ has no decomposition; Ð (eth) looks the same and stands in for it in some texts.
        'đ' | 'Đ' | 'ð' | 'Ð' => 'd',
        c => {
            let base = c.nfd().next().unwrap_or(c);
            base.to_lowercase().next().unwrap_or(base)
        }
    }
}

/// Folds one character.
pub fn fold_char(c: char) -> char {
    static TABLE: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if (c as u32) < TABLE_END {
        let table = TABLE.get_or_init(|| {
            (0..TABLE_END)
                .map(|u| char::from_u32(u).map(slow_fold).unwrap_or('\u{fffd}'))
                .collect()
        });
        return table[c as usize];
    }
    slow_fold(c)
}

/// Folds a string, character for character.
pub fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !is_format(*c))
        .map(fold_char)
        .collect()
}

/// Whether `c` is an invisible format character (Unicode category Cf: a soft hyphen, a
/// zero-width space or joiner, a byte-order mark, a direction mark) that text pasted from a
/// word processor or the web leaves inside words: ignored in search, never a word break.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Lowercases a string character for character, keeping the accents.
pub fn lower(text: &str) -> String {
    text.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Splits text into search terms: runs of letters and digits.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a string carries any Vietnamese mark (so the user typed accents on purpose).
pub fn has_marks(text: &str) -> bool {
    text.chars()
        .any(|c| fold_char(c) != c.to_lowercase().next().unwrap_or(c))
}

/// What a folded term reads as when it was typed with a Vietnamese input method that did not
/// turn the keys into marks: Telex (`nghij` for nghị, `quyeets` for quyết, `dduwowngf` for
/// đường) or VNI (`nghi5`, `quye6t1`). `None` when the term has no such keys. A Vietnamese word
/// never ends in `s f r x j z`, nor has them after its vowel, so removing them there cannot turn
/// a real word into another.
pub fn typed_without_marks(term: &str) -> Option<String> {
    const VOWELS: &[char] = &['a', 'e', 'i', 'o', 'u', 'y'];
    if term.chars().count() < 3
        || !term.is_ascii()
        || !term.chars().any(|c| c.is_ascii_alphabetic())
    {
        return None;
    }
    // VNI: digits typed after letters are marks.
    let starts_alpha = term.starts_with(|c: char| c.is_ascii_alphabetic());
    let mut word: String = if starts_alpha {
        term.chars().filter(|c| !c.is_ascii_digit()).collect()
    } else {
        term.to_owned()
    };
    // Telex tone keys after the first vowel.
    if let Some(first_vowel) = word.find(VOWELS) {
        let (head, tail) = word.split_at(first_vowel);
        let tail: String = tail
            .chars()
            .filter(|c| !matches!(c, 's' | 'f' | 'r' | 'x' | 'j' | 'z'))
            .collect();
        word = format!("{head}{tail}");
    }
    // Telex vowel and consonant keys: aa â, aw ă, ee ê, oo ô, ow ơ, uw ư, w ư, dd đ.
    for (typed, letter) in [
        ("uow", "uo"),
        ("aa", "a"),
        ("aw", "a"),
        ("ee", "e"),
        ("oo", "o"),
        ("ow", "o"),
        ("uw", "u"),
        ("dd", "d"),
        ("w", "u"),
    ] {
        word = word.replace(typed, letter);
    }
    (word != term && !word.is_empty()).then_some(word)
}

/// Tone marks (grave, acute, tilde, hook above, dot below), which old and new Vietnamese
/// spelling place on different vowels of `oa`, `oe` and `uy`.
const TONES: [char; 5] = ['\u{300}', '\u{301}', '\u{303}', '\u{309}', '\u{323}'];

/// `text` with the tone of an open `oa`, `oe` or `uy` on its second vowel, as new-style
/// spelling writes it: "hòa" and "hoà", "thủy" and "thuỷ", "khỏe" and "khoẻ" become one form.
/// Composed (NFC) on return; only the comparison of exact accents uses it.
pub fn tone_on_second_vowel(text: &str) -> String {
    let chars: Vec<char> = text.nfd().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let pair = |first: char, second: char| {
            matches!(
                (first.to_ascii_lowercase(), second.to_ascii_lowercase()),
                ('o', 'a') | ('o', 'e') | ('u', 'y')
            )
        };
        // first vowel, its tone, the second vowel with no mark of its own, then the
        // syllable's end (with a final consonant both spellings already agree).
        if let (Some(&v1), Some(&tone), Some(&v2)) =
            (chars.get(i), chars.get(i + 1), chars.get(i + 2))
        {
            let ends = chars
                .get(i + 3)
                .is_none_or(|c| !c.is_alphanumeric() && !TONES.contains(c) && !is_mark(*c));
            if pair(v1, v2) && TONES.contains(&tone) && ends {
                out.extend([v1, v2, tone]);
                i += 3;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.into_iter().nfc().collect()
}

/// A combining mark (the range NFD puts Vietnamese marks in).
fn is_mark(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_vietnamese() {
        assert_eq!(fold("Nghị quyết số 57-NQ/TW"), "nghi quyet so 57-nq/tw");
        assert_eq!(fold("ĐẢNG PHÍ đảng phí"), "dang phi dang phi");
        assert_eq!(fold("ÐẢNG ðảng"), "dang dang");
        assert_eq!(fold("Ễ ộ ẫ ữ ỳ"), "e o a u y");
        for s in ["Nghị quyết", "Đảng", "Thủ đô Hà Nội", "ẫẫẫ"] {
            assert_eq!(fold(s).chars().count(), s.chars().count());
        }
        assert!(has_marks("nghị"));
        assert!(has_marks("đảng"));
        assert!(!has_marks("nghi quyet 57"));
        assert_eq!(terms("  57-NQ/TW, nghị "), ["57", "NQ", "TW", "nghị"]);
    }

    #[test]
    fn telex_and_vni_keys_read_as_the_word_meant() {
        for (typed, meant) in [
            ("nghij", "nghi"),
            ("quyeets", "quyet"),
            ("quyeest", "quyet"),
            ("dduwowngf", "duong"),
            ("ddangr", "dang"),
            ("phis", "phi"),
            ("nghi5", "nghi"),
            ("quye6t1", "quyet"),
            ("thoong", "thong"),
        ] {
            assert_eq!(
                typed_without_marks(typed).as_deref(),
                Some(meant),
                "{typed}"
            );
        }
        // Plain words, numbers and short terms have no variant.
        for plain in ["nghi", "quyet", "57", "tw", "dang", "sang", "xa", "truong"] {
            assert_eq!(typed_without_marks(plain), None, "{plain}");
        }
    }

    #[test]
    fn tones_of_open_oa_oe_uy_go_on_the_second_vowel() {
        assert_eq!(
            tone_on_second_vowel("Hòa thủy khỏe họa toán quý hoàng"),
            "Hoà thuỷ khoẻ hoạ toán quý hoàng"
        );
        assert_eq!(tone_on_second_vowel("hoà thuỷ"), "hoà thuỷ");
    }
}
