//! HTML escaping for everything that writes pages from wire data (the dashboard, the diff's
//! HTML report): HTML metacharacters become entities and control or direction-changing
//! characters become visible escapes (`\r`, `\n`, `\u{202e}`), so a user name like
//! `<img src=x onerror=alert(1)>` or one with CR LF shows as the text it is.

use std::fmt::{self, Display, Write};

/// Escapes for HTML text and attribute values (always double-quoted in these pages).
pub struct E<'a>(pub &'a str);

impl Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                // Bidi overrides and invisible separators could make one name look like another.
                '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' => {
                    write!(f, "\\u{{{:04x}}}", c as u32)?
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}
