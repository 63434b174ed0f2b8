//! A realm's LDAP directory (Zulip's `AUTH_LDAP_*` settings), defined once: the one list in
//! [`ldap_settings!`] gives the struct (which is also the `realm set` flags, through clap's
//! flatten, and the changes of an update), its columns for every engine, and its audit
//! description. Each field is `None` when unset, or, in a change, when left as it is.

use clap::builder::{PossibleValuesParser, TypedValueParser};

/// The filter Zulip's documentation starts from.
pub const DEFAULT_USER_FILTER: &str = "(uid=%(user)s)";

/// One setting's stored value, as every engine reads and writes it. An empty text is how an
/// operator unsets an optional value, so it reads back as unset.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Text(Option<String>),
    Flag(Option<bool>),
}

/// The kinds of value a setting may have.
pub trait Setting: Sized {
    const IS_FLAG: bool;
    fn to_column(value: &Option<Self>) -> Column;
    fn from_column(column: Column) -> Option<Self>;
}

impl Setting for String {
    const IS_FLAG: bool = false;
    fn to_column(value: &Option<String>) -> Column {
        Column::Text(value.clone())
    }
    fn from_column(column: Column) -> Option<String> {
        match column {
            Column::Text(text) => text.filter(|t| !t.is_empty()),
            Column::Flag(_) => None,
        }
    }
}

impl Setting for bool {
    const IS_FLAG: bool = true;
    fn to_column(value: &Option<bool>) -> Column {
        Column::Flag(*value)
    }
    fn from_column(column: Column) -> Option<bool> {
        match column {
            Column::Flag(flag) => flag,
            Column::Text(_) => None,
        }
    }
}

/// `on` or `off`, for the flag settings on the command line.
fn on_off() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new(["on", "off"]).map(|v| v == "on")
}

/// `require` or `auto`, for StartTLS.
fn require_auto() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new(["auto", "require"]).map(|v| v == "require")
}

fn on_off_word(on: &bool) -> &'static str {
    if *on { "on" } else { "off" }
}

macro_rules! ldap_settings {
    ($(
        $(#[$attr:meta])*
        $field:ident: $ty:ty, column $column:literal, describe $describe:expr;
    )*) => {
        /// A realm's LDAP settings; `None` is unset (or, in a change, unchanged).
        #[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
        pub struct LdapSettings {
            $( $(#[$attr])* pub $field: Option<$ty>, )*
        }

        impl LdapSettings {
            /// The realm table's columns, in field order, and whether each is a flag.
            pub const COLUMNS: &'static [(&'static str, bool)] =
                &[$(($column, <$ty as Setting>::IS_FLAG)),*];

            /// The values in [`LdapSettings::COLUMNS`] order.
            pub fn columns(&self) -> Vec<Column> {
                vec![$(<$ty as Setting>::to_column(&self.$field)),*]
            }

            /// Settings from values in [`LdapSettings::COLUMNS`] order.
            pub fn from_columns(columns: impl IntoIterator<Item = Column>) -> LdapSettings {
                let mut columns = columns.into_iter();
                LdapSettings {
                    $($field: columns.next().and_then(<$ty as Setting>::from_column),)*
                }
            }

            /// Each set value in words, for the audit trail (never a secret).
            pub fn describe(&self) -> Vec<String> {
                let mut parts = Vec::new();
                $(
                    if let Some(value) = &self.$field {
                        let describe: fn(&$ty) -> String = $describe;
                        parts.push(describe(value));
                    }
                )*
                parts
            }
        }
    };
}

ldap_settings! {
    /// Turn LDAP on or off; setting --ldap-url turns it on
    #[arg(long = "ldap", value_name = "LDAP", value_parser = on_off())]
    enabled: bool, column "ldap_enabled", describe |v| format!("ldap {}", on_off_word(v));
    /// ldap://host[:port] (StartTLS when offered) or ldaps://host[:port]
    #[arg(long = "ldap-url", value_name = "URL")]
    url: String, column "ldap_url", describe |v| format!("ldap url {v:?}");
    /// PEM file of the CA to trust for the directory's TLS certificate
    #[arg(long = "ldap-ca-file", value_name = "PATH")]
    ca_file: String, column "ldap_ca_file", describe |v| format!("ldap ca file {v:?}");
    /// `require` refuses ldap:// without StartTLS
    #[arg(long = "ldap-starttls", value_name = "LDAP_STARTTLS", value_parser = require_auto())]
    starttls_required: bool, column "ldap_starttls_required",
        describe |v| format!("ldap starttls {}", if *v { "require" } else { "auto" });
    /// The service account that searches for users
    #[arg(long = "ldap-bind-dn", value_name = "DN")]
    bind_dn: String, column "ldap_bind_dn", describe |v| format!("ldap bind dn {v:?}");
    /// The service account's secret: never from argv (see `realm set --ldap-bind-password-file`).
    #[arg(skip)]
    bind_password: String, column "ldap_bind_password",
        describe |_| "ldap bind password changed".to_owned();
    /// Where users are searched (a base DN)
    #[arg(long = "ldap-user-search", value_name = "BASE")]
    user_search: String, column "ldap_user_search", describe |v| format!("ldap user search {v:?}");
    /// The search filter; %(user)s stands for the LDAP username [default: (uid=%(user)s)]
    #[arg(long = "ldap-user-filter", value_name = "FILTER")]
    user_filter: String, column "ldap_user_filter", describe |v| format!("ldap user filter {v:?}");
    /// The Zulip email is USERNAME@DOMAIN
    #[arg(long = "ldap-append-domain", value_name = "DOMAIN")]
    append_domain: String, column "ldap_append_domain",
        describe |v| format!("ldap append domain {v:?}");
    /// The Zulip email is this attribute of the user's entry
    #[arg(long = "ldap-email-attr", value_name = "ATTR")]
    email_attr: String, column "ldap_email_attr", describe |v| format!("ldap email attr {v:?}");
    /// The attribute that holds the user's full name
    #[arg(long = "ldap-full-name-attr", value_name = "ATTR")]
    full_name_attr: String, column "ldap_full_name_attr",
        describe |v| format!("ldap full name attr {v:?}");
    /// Give a directory user without an account here one at their first login
    #[arg(long = "ldap-create-users", value_name = "LDAP_CREATE_USERS", value_parser = on_off())]
    create_users: bool, column "ldap_create_users",
        describe |v| format!("ldap create users {}", on_off_word(v));
}

impl LdapSettings {
    /// On and configured: a URL is set and LDAP is switched on.
    pub fn is_on(&self) -> bool {
        self.enabled == Some(true) && self.url.is_some()
    }

    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or("")
    }

    pub fn user_search(&self) -> &str {
        self.user_search.as_deref().unwrap_or("")
    }

    pub fn user_filter(&self) -> &str {
        self.user_filter.as_deref().unwrap_or(DEFAULT_USER_FILTER)
    }

    pub fn starttls_required(&self) -> bool {
        self.starttls_required == Some(true)
    }

    pub fn create_users(&self) -> bool {
        self.create_users == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_and_empty_text_is_unset() {
        let settings = LdapSettings {
            enabled: Some(true),
            url: Some("ldap://x".into()),
            starttls_required: Some(false),
            bind_password: Some("s3cret".into()),
            ..LdapSettings::default()
        };
        assert_eq!(settings.columns().len(), LdapSettings::COLUMNS.len());
        assert_eq!(LdapSettings::from_columns(settings.columns()), settings);
        let unset = LdapSettings::from_columns(LdapSettings::COLUMNS.iter().map(|&(_, flag)| {
            if flag {
                Column::Flag(None)
            } else {
                Column::Text(Some(String::new()))
            }
        }));
        assert_eq!(unset, LdapSettings::default());
        let words = settings.describe().join(", ");
        assert_eq!(
            words,
            "ldap on, ldap url \"ldap://x\", ldap starttls auto, ldap bind password changed"
        );
        assert!(!words.contains("s3cret"));
    }
}
