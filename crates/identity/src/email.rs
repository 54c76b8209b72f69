//! E-mail normalisation (UID2 rules, extended to `googlemail.com` as Google Customer Match does).

/// Domains whose local part ignores dots and `+tag` suffixes.
const GMAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// Normalises an e-mail address, or returns why it is rejected.
pub(crate) fn normalise(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("empty".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err("whitespace inside the address".into());
    }
    if trimmed.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    let lower = trimmed.to_lowercase();
    let Some((local, domain)) = lower.split_once('@') else {
        return Err("missing @".into());
    };
    if domain.contains('@') {
        return Err("more than one @".into());
    }
    if local.is_empty() {
        return Err("empty local part".into());
    }
    if domain.is_empty() {
        return Err("empty domain".into());
    }
    if !domain.contains('.') {
        return Err("domain has no dot".into());
    }
    if domain.split('.').any(str::is_empty) {
        return Err("domain has an empty label".into());
    }
    let local = if GMAIL_DOMAINS.contains(&domain) {
        let before_tag = local.split('+').next().unwrap_or_default();
        before_tag.replace('.', "")
    } else {
        local.to_owned()
    };
    if local.is_empty() {
        return Err("empty local part".into());
    }
    Ok(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn trims_and_lower_cases() {
        assert_eq!(
            normalise("  MyEmail@Example.COM\t\n").unwrap(),
            "myemail@example.com"
        );
    }

    #[test]
    fn keeps_dots_and_tags_outside_gmail() {
        assert_eq!(
            normalise("Jane.Saoirse+Work@example.com").unwrap(),
            "jane.saoirse+work@example.com"
        );
        assert_eq!(
            normalise("jane.doe@gmail.co.uk").unwrap(),
            "jane.doe@gmail.co.uk"
        );
        assert_eq!(
            normalise("jane.doe@mail.gmail.com").unwrap(),
            "jane.doe@mail.gmail.com"
        );
    }

    #[test]
    fn gmail_drops_dots_and_tag() {
        for raw in [
            "JANE.SAOIRSE@gmail.com",
            "Jane.Saoirse@gmail.com",
            "JaneSaoirse+Work@gmail.com",
            "j.a.n.e.saoirse+a+b.c@GMAIL.COM",
        ] {
            assert_eq!(normalise(raw).unwrap(), "janesaoirse@gmail.com", "{raw}");
        }
    }

    #[test]
    fn googlemail_gets_gmail_rules_but_keeps_its_domain() {
        assert_eq!(
            normalise("Jane.Saoirse+x@GoogleMail.com").unwrap(),
            "janesaoirse@googlemail.com"
        );
    }

    #[test]
    fn non_ascii_is_lower_cased_and_kept() {
        assert_eq!(normalise("ÅSA@Exämple.se").unwrap(), "åsa@exämple.se");
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("user.example.com", "missing @"),
            ("a@b@example.com", "more than one @"),
            ("@example.com", "empty local part"),
            ("user@", "empty domain"),
            ("user@localhost", "domain has no dot"),
            ("user@example..com", "domain has an empty label"),
            ("user@.example.com", "domain has an empty label"),
            ("user@example.com.", "domain has an empty label"),
            ("us er@example.com", "whitespace inside the address"),
            ("user@exam\tple.com", "whitespace inside the address"),
            (
                "user\u{0}@example.com",
                "control characters are not allowed",
            ),
            ("+tag@gmail.com", "empty local part"),
            ("...@gmail.com", "empty local part"),
        ];
        for (raw, reason) in cases {
            assert_eq!(normalise(raw), Err(reason.to_owned()), "{raw:?}");
        }
    }
}
