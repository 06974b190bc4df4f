//! Feed titles as words to speak: callers hear them through text-to-speech, so markup,
//! entities and stray whitespace must go. Hand-written rather than an HTML parser: titles
//! are a line of text with the odd `<b>` or `&amp;`, and the table below covers what
//! podcast hosts put in them.

/// Tags dropped, entities decoded, whitespace collapsed to single spaces.
pub(crate) fn plain(text: &str) -> String {
    // Hosts often escape twice or more (`&lt;b&gt;` inside CDATA, `&amp;amp;`): each
    // round catches what the one before decoded into markup or entities.
    let mut text = text.to_owned();
    for _ in 0..3 {
        let next = decode_entities(&strip_tags(&text));
        if next == text {
            break;
        }
        text = next;
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Elements that separate words: dropping them outright would join the words either side.
const BLOCK_TAGS: &[&str] = &[
    "br",
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
];

/// Removes `<tag …>`, `</tag>`, `<!…>` and `<?…?>`; a `<` that starts none of them (as in
/// "3 < 4"), or one never closed, stays as text.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let starts_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        match after.find('>').filter(|_| starts_tag) {
            Some(end) => {
                let name: String = after[..end]
                    .trim_start_matches('/')
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase();
                if BLOCK_TAGS.contains(&name.as_str()) {
                    out.push(' ');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Named entities met in titles: XML's five, HTML's spaces, quotes and dashes, and the
/// accented letters of European names and hymns.
const ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("ensp", ' '),
    ("emsp", ' '),
    ("thinsp", ' '),
    ("lsquo", '\u{2018}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("ldquo", '\u{201c}'),
    ("rdquo", '\u{201d}'),
    ("bdquo", '\u{201e}'),
    ("laquo", '\u{ab}'),
    ("raquo", '\u{bb}'),
    ("ndash", '\u{2013}'),
    ("mdash", '\u{2014}'),
    ("hellip", '\u{2026}'),
    ("middot", '\u{b7}'),
    ("bull", '\u{2022}'),
    ("copy", '\u{a9}'),
    ("reg", '\u{ae}'),
    ("trade", '\u{2122}'),
    ("pound", '\u{a3}'),
    ("euro", '\u{20ac}'),
    ("deg", '\u{b0}'),
    ("frac12", '\u{bd}'),
    ("aacute", 'á'),
    ("agrave", 'à'),
    ("acirc", 'â'),
    ("auml", 'ä'),
    ("ccedil", 'ç'),
    ("eacute", 'é'),
    ("egrave", 'è'),
    ("ecirc", 'ê'),
    ("euml", 'ë'),
    ("iacute", 'í'),
    ("iuml", 'ï'),
    ("ntilde", 'ñ'),
    ("oacute", 'ó'),
    ("ocirc", 'ô'),
    ("ouml", 'ö'),
    ("uacute", 'ú'),
    ("uuml", 'ü'),
    ("szlig", 'ß'),
    ("Eacute", 'É'),
    ("Aring", 'Å'),
    ("aring", 'å'),
    ("oslash", 'ø'),
    ("aelig", 'æ'),
];

/// The longest entity we look for, `&#x10FFFF;` or `&thinsp;`, so a bare `&` is not
/// matched with a `;` sentences later.
const MAX_ENTITY: usize = 10;

/// Decodes `&name;`, `&#123;` and `&#x1F;`; anything unknown or invalid stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = after
            .char_indices()
            .take(MAX_ENTITY + 1)
            .find(|&(_, c)| c == ';')
            .and_then(|(end, _)| entity(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if let Some(decimal) = name.strip_prefix('#') {
        decimal.parse().ok()
    } else {
        return ENTITIES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, c)| c);
    };
    // Control characters would reach the speech engine as noise or nothing.
    code.and_then(char::from_u32).filter(|c| !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn markup_and_entities_become_words() {
        let cases = [
            ("&lt;b&gt;Evensong&lt;/b&gt;", "Evensong"),
            ("<b>Evensong</b>", "Evensong"),
            ("&amp;lt;i&amp;gt;Matins&amp;lt;/i&amp;gt;", "Matins"),
            ("  Choral\n\t Evensong  ", "Choral Evensong"),
            ("Fish &amp; Chips", "Fish & Chips"),
            ("Fish &amp;amp; Chips", "Fish & Chips"),
            (
                "St Mary&#8217;s &#x2013; Advent",
                "St Mary\u{2019}s \u{2013} Advent",
            ),
            ("Advent&nbsp;Sunday", "Advent Sunday"),
            ("Lessons<br/>and Carols", "Lessons and Carols"),
            ("<p>Easter</p><p>Day</p>", "Easter Day"),
            ("Ev<em>en</em>song", "Evensong"),
            ("<![CDATA[x]]>Compline", "Compline"),
            ("Caf&eacute; Church", "Café Church"),
            ("3 < 4 and 5 > 4", "3 < 4 and 5 > 4"),
            ("A & B; C", "A & B; C"),
            ("&unknown; &#0; &#xZZ; &", "&unknown; &#0; &#xZZ; &"),
            ("<unclosed", "<unclosed"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(plain(input), expected, "{input:?}");
        }
    }
}
