//! Connection URLs in messages, without their secrets.

use std::borrow::Cow;

/// A connection URL split into its parts, credentials first: `scheme://[user[:password]@]hosts
/// [/path][?options][#fragment]`.
///
/// Passwords are often pasted unencoded, so the user info runs to the **last** `@` followed by
/// a host list (a password may hold `@`, `?`, `/`, `#`, `:`, `;` or `&`); only then are path and
/// options split off. So an unencoded `@` in an option of a URL with credentials, followed by
/// text that could be a host, is read as the end of the user info (options must
/// percent-encode it as `%40`); a URL without credentials may hold `@` in its path and options.
///
/// ```
/// use stream_core::UrlParts;
///
/// let url = UrlParts::parse("mysql://app:abc?Hunter2@db:3306/shop?ssl-mode=required")
///     .expect("a URL");
/// assert_eq!(url.user, Some("app"));
/// assert_eq!(url.password, Some("abc?Hunter2"));
/// assert_eq!(url.hosts, "db:3306");
/// assert_eq!(url.path, Some("shop"));
/// assert_eq!(url.options().collect::<Vec<_>>(), [("ssl-mode", "required")]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `mysql`, `mongodb`, …, as written.
    pub scheme: &'a str,
    /// The user name, still percent-encoded; `None` without user info.
    pub user: Option<&'a str>,
    /// The password, still percent-encoded; `None` without a `:` in the user info.
    pub password: Option<&'a str>,
    /// `host[:port]`, or several separated by `,` (MongoDB).
    pub hosts: &'a str,
    /// What follows the first `/` after the hosts (the database), without the `/`; `None`
    /// without a `/`.
    pub path: Option<&'a str>,
    /// What follows the `?`, options separated by `&` or `;`.
    pub query: Option<&'a str>,
    /// What follows the `#`.
    pub fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits `url`; `None` when it has no `://`.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (user, password, rest) = match split_user_info(rest) {
            Some((info, after)) => match info.split_once(':') {
                Some((user, password)) => (Some(user), Some(password), after),
                None => (Some(info), None, after),
            },
            None => (None, None, rest),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, Some(path)),
            None => (rest, None),
        };
        Some(Self {
            scheme,
            user,
            password,
            hosts,
            path,
            query,
            fragment,
        })
    }

    /// The options as `(name, value)`, separated by `&` or `;`; empty ones skipped, an option
    /// without `=` has an empty value. Both still percent-encoded.
    pub fn options(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.query
            .unwrap_or_default()
            .split(['&', ';'])
            .filter(|option| !option.is_empty())
            .map(|option| option.split_once('=').unwrap_or((option, "")))
    }
}

/// `(user info, rest)` when the URL has user info: up to the last `@` that is followed by a
/// host list (`h1:27017,h2`, `[::1]:3306`, `%2Ftmp%2Fm.sock`) and preceded by a user name without
/// `/`, `?` or `#`; an `@` in a path or option of a URL without credentials is neither.
fn split_user_info(rest: &str) -> Option<(&str, &str)> {
    let is_host_char = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | ',' | '[' | ']' | '%')
    };
    rest.rmatch_indices('@').find_map(|(at, _)| {
        let (info, after) = (&rest[..at], &rest[at + 1..]);
        let hosts = after.split(['/', '?', '#']).next().unwrap_or_default();
        let user = info.split_once(':').map_or(info, |(user, _)| user);
        (hosts.chars().all(is_host_char) && !user.contains(['/', '?', '#']))
            .then_some((info, after))
    })
}

/// The URL with every secret replaced by `***`, for messages: the password of the user info
/// and the values of options that hold credentials (`password=`, `sslpassword=`,
/// `tlsCertificateKeyFilePassword=`, …, and the secret entries of MongoDB's
/// `authMechanismProperties=`, like `AWS_SESSION_TOKEN:`).
///
/// ```
/// use stream_core::redact_url;
///
/// assert_eq!(
///     redact_url("mongodb://key:s3cr?t@db/?authMechanismProperties=AWS_SESSION_TOKEN:tok"),
///     "mongodb://key:***@db/?authMechanismProperties=AWS_SESSION_TOKEN:***"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(parts) = UrlParts::parse(url) else {
        return "<not a URL>".to_owned();
    };
    let mut shown = format!("{}://", parts.scheme);
    if let Some(user) = parts.user {
        shown.push_str(user);
        if parts.password.is_some() {
            shown.push_str(":***");
        }
        shown.push('@');
    }
    shown.push_str(parts.hosts);
    if let Some(path) = parts.path {
        shown.push('/');
        shown.push_str(path);
    }
    if let Some(query) = parts.query {
        shown.push('?');
        shown.push_str(&redact_query(query));
    }
    if let Some(fragment) = parts.fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// The query with the value of every credential-bearing option replaced, keeping each
/// separator (`&` or `;`) as written.
fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let option = &rest[..end];
        match option.split_once('=') {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(&redact_option_value(name, value));
            }
            None => out.push_str(option),
        }
        let Some(separator) = rest[end..].chars().next() else {
            break;
        };
        out.push(separator);
        rest = &rest[end + 1..];
    }
    out
}

fn redact_option_value<'v>(name: &str, value: &'v str) -> Cow<'v, str> {
    let name = percent_decoded(name).to_ascii_lowercase();
    if is_credential(&name) {
        return Cow::Borrowed("***");
    }
    if name == "authmechanismproperties" {
        return Cow::Owned(redact_properties(value));
    }
    Cow::Borrowed(value)
}

/// `SERVICE_NAME:mongodb,AWS_SESSION_TOKEN:***`: each `key:value` entry whose key names a
/// credential loses its value. A value may hold a `,` itself, so after a credential only the
/// entries of known harmless properties are kept; every other piece becomes `***`.
fn redact_properties(value: &str) -> String {
    const HARMLESS: [&str; 8] = [
        "SERVICE_NAME",
        "SERVICE_REALM",
        "SERVICE_HOST",
        "CANONICALIZE_HOST_NAME",
        "ENVIRONMENT",
        "TOKEN_RESOURCE",
        "ALLOWED_HOSTS",
        "PROVIDER_NAME",
    ];
    // The separators themselves may be percent-encoded (`%3A`, `%2C`).
    let decoded = percent_decoded(value);
    let mut after_credential = false;
    decoded
        .split(',')
        .map(|entry| match entry.split_once(':') {
            Some((key, _)) if is_credential(&key.to_ascii_lowercase()) => {
                after_credential = true;
                format!("{key}:***")
            }
            Some((key, _))
                if !after_credential || HARMLESS.contains(&key.to_ascii_uppercase().as_str()) =>
            {
                entry.to_owned()
            }
            _ => "***".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether an option (or property) name, lower-cased, speaks of a credential.
fn is_credential(name: &str) -> bool {
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "credential",
        "apikey",
        "api_key",
        "api-key",
        "privatekey",
        "private_key",
        "private-key",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `s` with `%XX` escapes decoded (invalid ones and invalid UTF-8 kept as they are).
fn percent_decoded(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("mongodb://app:s3cret@db:27017/shop?authSource=admin"),
            "mongodb://app:***@db:27017/shop?authSource=admin"
        );
        assert_eq!(redact_url("mysql://repl@db/x"), "mysql://repl@db/x");
        assert_eq!(redact_url("no url"), "<not a URL>");
        assert_eq!(
            redact_url("mongodb://h/?tls=true&tlsCertificateKeyFilePassword=k3y&x=1"),
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&x=1"
        );
        assert_eq!(redact_url("mysql://a:p@ss@h/d"), "mysql://a:***@h/d");
    }

    #[test]
    fn a_password_holding_a_question_mark_or_slash_is_hidden_whole() {
        assert_eq!(
            redact_url("mysql://u:abc?Hunter2@db:3306/shop"),
            "mysql://u:***@db:3306/shop"
        );
        assert_eq!(
            redact_url("mysql://u:a/b#c?d=e&f@db/shop?ssl-mode=required"),
            "mysql://u:***@db/shop?ssl-mode=required"
        );
        let parts = UrlParts::parse("mysql://u:abc?Hunter2@db/shop?x=1").expect("url");
        assert_eq!(parts.path, Some("shop"));
        assert_eq!(parts.password, Some("abc?Hunter2"));
        assert_eq!(parts.query, Some("x=1"));
    }

    #[test]
    fn secret_entries_of_auth_mechanism_properties_are_hidden() {
        assert_eq!(
            redact_url(
                "mongodb://AKIA:sk@db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FwoGZXIvYXdz"
            ),
            "mongodb://AKIA:***@db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:***"
        );
        assert_eq!(
            redact_url(
                "mongodb://db/?authMechanismProperties=SERVICE_NAME:mongodb,AWS_SESSION_TOKEN:t0k,x"
            ),
            "mongodb://db/?authMechanismProperties=SERVICE_NAME:mongodb,AWS_SESSION_TOKEN:***,***"
        );
        assert_eq!(
            redact_url("mongodb://db/?authMechanismProperties=AWS_SESSION_TOKEN%3At0k"),
            "mongodb://db/?authMechanismProperties=AWS_SESSION_TOKEN:***"
        );
    }

    #[test]
    fn options_joined_with_semicolons_or_encoded_names_are_redacted() {
        assert_eq!(
            redact_url("mysql://db/x?ssl-mode=required;sslpassword=k3y;a=b"),
            "mysql://db/x?ssl-mode=required;sslpassword=***;a=b"
        );
        assert_eq!(
            redact_url("mongodb://db/?pass%77ord=k3y&apiKey=abc"),
            "mongodb://db/?pass%77ord=***&apiKey=***"
        );
    }

    #[test]
    fn urls_without_credentials_keep_an_at_sign_in_their_options() {
        assert_eq!(
            redact_url("mongodb://db:27017/?appName=me@host&password=k3y"),
            "mongodb://db:27017/?appName=me@host&password=***"
        );
        // Ambiguous: `27017/?appName=me` could be a password. Hiding too much is the safe side.
        assert_eq!(
            redact_url("mongodb://db:27017/?appName=me@host"),
            "mongodb://db:***@host"
        );
        assert_eq!(redact_url("mongodb://db/"), "mongodb://db/");
        assert_eq!(redact_url("mongodb://db"), "mongodb://db");
        assert_eq!(redact_url("mongodb://db/#frag"), "mongodb://db/#frag");
    }

    /// The pieces of four characters of `secret` that `template` with `secret` in place of
    /// its `{}` shows once redacted, leaving out pieces the template holds anyway.
    fn leaked_pieces(template: &str, secret: &str) -> (String, Vec<String>) {
        let shown = redact_url(&template.replacen("{}", secret, 1));
        let elsewhere = template.replacen("{}", "", 1);
        let chars: Vec<char> = secret.chars().collect();
        let leaked = chars
            .windows(4)
            .map(|w| w.iter().collect::<String>())
            .filter(|piece| !elsewhere.contains(piece.as_str()) && !piece.contains('*'))
            .filter(|piece| shown.contains(piece.as_str()))
            .collect();
        (shown, leaked)
    }

    /// Printable ASCII, URL delimiters included.
    const PRINTABLE: &str = "[ -~]{4,24}";

    proptest! {
        #[test]
        fn no_password_of_the_user_info_appears_in_the_redacted_url(
            password in PRINTABLE,
            template in prop::sample::select(vec![
                "mysql://user:{}@db.example:3306/shop?ssl-mode=required",
                "mariadb://user:{}@db.example/shop",
                "mongodb://user:{}@h1:27017,h2:27017/admin?replicaSet=rs0&authSource=admin",
                "mongodb+srv://user:{}@cluster0.example/?retryWrites=true;w=majority",
            ]),
        ) {
            let (shown, leaked) = leaked_pieces(template, &password);
            prop_assert!(!shown.contains(&password), "{password} -> {shown}");
            prop_assert!(leaked.is_empty(), "{password} -> {shown}: {leaked:?}");
        }

        #[test]
        fn no_credential_option_value_appears_in_the_redacted_url(
            // An unencoded `&`, `;` or `#` ends the value, and an unencoded `@` in a URL with
            // credentials ends its user info (see `UrlParts`): such URLs say something else.
            secret in "[ -\"$%'-:<-?A-~]{4,24}",
            template in prop::sample::select(vec![
                "mysql://db.example/shop?ssl-mode=required&sslpassword={}",
                "mysql://db.example/shop?sslpassword={};ssl-mode=required",
                "mongodb://u:pw@db/?tls=true&tlsCertificateKeyFilePassword={}",
                "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:{}",
            ]),
        ) {
            let (shown, leaked) = leaked_pieces(template, &secret);
            prop_assert!(leaked.is_empty(), "{secret} -> {shown}: {leaked:?}");
        }
    }
}
