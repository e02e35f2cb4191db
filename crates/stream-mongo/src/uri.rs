//! The parts of a `mongodb://` connection string that messages may name (hosts, database)
//! and those they must never show (the password, secret option values). Credentials are found
//! before options: a password may hold a raw `?` that would otherwise end the host list.

use stream_core::redact_url;

/// Characters a user name or password must percent-encode (the connection string spec; the
/// driver refuses them raw, and a raw `?` would even move the password into the host list).
const RESERVED: &[char] = &[':', '/', '?', '#', '[', ']', '@'];

/// Shortest part of a secret scrubbed on its own: shorter ones would mangle messages.
const MIN_FRAGMENT: usize = 3;

/// A connection string taken apart.
#[derive(Clone, Default)]
pub(crate) struct UriParts {
    /// `host[:port][,host[:port]...]`, as written.
    pub(crate) hosts: String,
    /// The database of the path, percent-decoded; `None` when there is none.
    pub(crate) database: Option<String>,
    /// Texts no message may contain, longest first.
    pub(crate) secrets: Vec<String>,
    /// `serverSelectionTimeoutMS`, when the URI sets it.
    pub(crate) selection_timeout: Option<std::time::Duration>,
}

impl UriParts {
    /// `message` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// The URI for messages: `redact_url`, then every secret this parser knows scrubbed too.
    pub(crate) fn shown(&self, uri: &str) -> String {
        self.scrub(&redact_url(uri))
    }
}

/// Takes `uri` apart; `Err` says what is wrong without quoting any secret. Whatever the
/// error, the secrets found so far come with it, to scrub the message that reports it.
pub(crate) fn parse(uri: &str) -> Result<UriParts, (String, UriParts)> {
    let mut parts = UriParts::default();
    let Some(rest) = uri
        .strip_prefix("mongodb://")
        .or_else(|| uri.strip_prefix("mongodb+srv://"))
    else {
        // Nothing is known about where a password would be: hide everything after `://`.
        if let Some((_, rest)) = uri.split_once("://") {
            parts.secrets.push(rest.to_owned());
        }
        return Err(("expected mongodb:// or mongodb+srv://".into(), parts));
    };
    let (userinfo, after) = match credentials_end(rest) {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let host_end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(host_end);
    let (path, options) = match tail.split_once('?') {
        Some((path, options)) => (path, options),
        None => (tail, ""),
    };
    parts.hosts = hosts.to_owned();
    for option in options.split('&') {
        secret_option(option, &mut parts.secrets);
        if let Some((name, value)) = option.split_once('=')
            && name.eq_ignore_ascii_case("serverSelectionTimeoutMS")
        {
            parts.selection_timeout = value.parse().ok().map(std::time::Duration::from_millis);
        }
    }
    let mut problem = None;
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if let Some(password) = password {
            add_secret(&mut parts.secrets, password);
            for fragment in password.split(RESERVED) {
                if fragment.len() >= MIN_FRAGMENT {
                    parts.secrets.push(fragment.to_owned());
                }
            }
            problem = reserved_in("password", password);
        }
        problem = problem.or_else(|| reserved_in("user name", user));
    }
    // Longest first, so that a secret containing another is scrubbed whole.
    parts
        .secrets
        .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    parts.secrets.dedup();
    if let Some(problem) = problem {
        return Err((problem, parts));
    }
    if parts.hosts.is_empty() {
        return Err(("no host".into(), parts));
    }
    let database = path.strip_prefix('/').unwrap_or(path);
    parts.database = (!database.is_empty()).then(|| percent_decode(database));
    Ok(parts)
}

/// Where the user info ends: an `@` followed by a host list (then `/`, `?` or the end). Of
/// several such `@`s, the first whose following text could hold options (`name=value`)
/// before the next one: an `@` inside an option value comes after the real one, and an `@`
/// followed by text without `=` before the next `@` is inside the password.
fn credentials_end(rest: &str) -> Option<usize> {
    let last = rest.rfind('@')?;
    let candidates: Vec<usize> = rest
        .match_indices('@')
        .map(|(i, _)| i)
        .filter(|&i| host_list_follows(&rest[i + 1..]))
        .collect();
    candidates
        .iter()
        .enumerate()
        .find(|(k, at)| {
            candidates
                .get(k + 1)
                .is_none_or(|next| rest[**at..*next].contains('='))
        })
        .map_or(Some(last), |(_, at)| Some(*at))
}

fn host_list_follows(text: &str) -> bool {
    let end = text.find(['/', '?']).unwrap_or(text.len());
    end > 0
        && text[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:,[]%".contains(c))
}

/// Adds the value of an option that holds a secret: any whose name speaks of a password,
/// secret, token or key passphrase, and the values of `authMechanismProperties` (an AWS
/// session token, for one).
fn secret_option(option: &str, secrets: &mut Vec<String>) {
    let Some((name, value)) = option.split_once('=') else {
        return;
    };
    let name = name.to_ascii_lowercase();
    let secret_name = ["password", "secret", "passphrase", "token"]
        .iter()
        .any(|word| name.contains(word));
    if secret_name {
        add_secret(secrets, value);
    }
    if name == "authmechanismproperties" {
        add_secret(secrets, value);
        let decoded = percent_decode(value);
        for property in value.split(',').chain(decoded.split(',')) {
            if let Some((_, value)) = property.split_once(':') {
                add_secret(secrets, value);
            }
        }
    }
}

/// A secret as written and percent-decoded.
fn add_secret(secrets: &mut Vec<String>, text: &str) {
    if text.is_empty() {
        return;
    }
    let decoded = percent_decode(text);
    if decoded != text && !decoded.is_empty() {
        secrets.push(decoded);
    }
    secrets.push(text.to_owned());
}

/// What is wrong with a user name or password holding reserved characters raw, naming the
/// characters (never the text) and their percent-encodings.
fn reserved_in(what: &str, text: &str) -> Option<String> {
    let mut found: Vec<char> = Vec::new();
    for c in text.chars().filter(|c| RESERVED.contains(c)) {
        if !found.contains(&c) {
            found.push(c);
        }
    }
    if found.is_empty() {
        return None;
    }
    let listed: Vec<String> = found.iter().map(|c| format!("`{c}`")).collect();
    let encoded: Vec<String> = found
        .iter()
        .map(|c| format!("`{c}` as `%{:02X}`", u32::from(*c)))
        .collect();
    Some(format!(
        "the {what} contains {} raw: percent-encode it ({})",
        listed.join(" and "),
        encoded.join(", ")
    ))
}

/// `%XX` sequences decoded (invalid ones kept as written).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(uri: &str) -> UriParts {
        parse(uri).unwrap_or_else(|(reason, _)| panic!("{uri}: {reason}"))
    }

    #[test]
    fn hosts_database_and_secrets_come_apart() {
        let p = ok("mongodb://app:s%40cret@db1:27017,db2/shop?replicaSet=rs0");
        assert_eq!(p.hosts, "db1:27017,db2");
        assert_eq!(p.database.as_deref(), Some("shop"));
        assert_eq!(p.secrets, ["s%40cret", "s@cret"]);
        let p = ok("mongodb+srv://cluster.example.com/?tls=true");
        assert_eq!(
            (p.hosts.as_str(), p.database),
            ("cluster.example.com", None)
        );
        assert!(p.secrets.is_empty());
        let p = ok("mongodb://h?replicaSet=rs0&serverSelectionTimeoutMS=500");
        assert_eq!((p.hosts.as_str(), p.database), ("h", None));
        assert_eq!(
            p.selection_timeout,
            Some(std::time::Duration::from_millis(500))
        );
    }

    #[test]
    fn an_at_sign_in_an_option_value_is_not_the_end_of_the_credentials() {
        let p = ok("mongodb://u:pw@h:1/db?appName=a@b");
        assert_eq!(p.hosts, "h:1");
        assert_eq!(p.database.as_deref(), Some("db"));
        assert_eq!(p.secrets, ["pw"]);
    }

    #[test]
    fn a_raw_question_mark_in_the_password_is_refused_without_quoting_it() {
        for uri in [
            "mongodb://app:Pa55?Wd9x@db:27017/shop",
            "mongodb://app:Pa55?Wd9x@db:27017/shop?tls=true",
            "mongodb://app:Pa55@x?Wd9x@db/",
        ] {
            let (reason, parts) = parse(uri).err().expect(uri);
            assert!(reason.contains("`?`") && reason.contains("%3F"), "{reason}");
            for part in ["Pa55", "Wd9x"] {
                assert!(!reason.contains(part), "{reason}");
                assert!(!parts.shown(uri).contains(part), "{}", parts.shown(uri));
                assert!(
                    !parts.scrub(&format!("driver said: {part}")).contains(part),
                    "{uri}"
                );
            }
        }
    }

    #[test]
    fn secret_option_values_are_secrets() {
        let uri = "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FwoGZXIvYXdz%2Btok&tlsCertificateKeyFilePassword=k3yPass";
        let p = ok(uri);
        for secret in ["FwoGZXIvYXdz%2Btok", "FwoGZXIvYXdz+tok", "k3yPass"] {
            assert!(p.secrets.iter().any(|s| s == secret), "{:?}", p.secrets);
            assert!(!p.shown(uri).contains(secret), "{}", p.shown(uri));
        }
        let (reason, parts) = parse("postgres://u:hunter2@h/db").err().expect("scheme");
        assert!(!reason.contains("hunter2"));
        assert!(!parts.shown("postgres://u:hunter2@h/db").contains("hunter2"));
    }
}
