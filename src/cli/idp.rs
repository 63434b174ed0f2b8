//! `idp add|list|set|remove`: a realm's OpenID providers (web.md §10). The rules of the
//! settings are auth's (`auth::oidc::config`); the secret never travels in argv and is never
//! printed; every change is audited as a change of the realm.

use serde::Serialize;

use super::admin::{json_line, print_table};
use super::{IdpArgs, IdpCommand, OnOff, no_controls, outln, read_secret};
use crate::auth::oidc::config::{self, DEFAULT_DISPLAY_NAME, DEFAULT_SCOPES, Provider};
use crate::error::{Error, invalid};
use crate::store::{AuditEntry, AuditEvent, Realm, Store};

const SECRET_VARIABLE: &str = "ZULIP_AUTH_OIDC_CLIENT_SECRET";

pub fn run(store: &Store, command: IdpCommand) -> Result<(), Error> {
    match command {
        IdpCommand::Add {
            name,
            realm,
            settings,
        } => {
            let realm = store.require_realm(&realm.subdomain)?;
            config::check_name(&name).map_err(|e| Error::Invalid(e.to_string()))?;
            let (Some(issuer), Some(client_id)) = (&settings.issuer, &settings.client_id) else {
                return invalid!("idp add needs --issuer and --client-id");
            };
            let Some(client_secret) =
                read_secret(settings.client_secret_file.as_deref(), SECRET_VARIABLE)?
            else {
                return invalid!("idp add needs --client-secret-file or {SECRET_VARIABLE}");
            };
            let provider = Provider {
                id: 0,
                realm_id: realm.id,
                name: name.clone(),
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret,
                scopes: String::new(),
                display_name: DEFAULT_DISPLAY_NAME.to_owned(),
                display_icon: None,
                auto_signup: false,
            };
            let provider = apply(
                provider,
                IdpArgs {
                    scopes: settings.scopes.clone().or(Some(DEFAULT_SCOPES.to_owned())),
                    ..settings
                },
                None,
            )?;
            let audit = changed(&realm, &name, "added");
            store.create_identity_provider(&provider, &audit)?;
            outln!(
                "added identity provider {name:?} to realm {:?}",
                realm.subdomain
            )
        }
        IdpCommand::List { realm, json } => {
            let realm = store.require_realm(&realm.subdomain)?;
            list(&store.identity_providers(realm.id)?, json)
        }
        IdpCommand::Set {
            name,
            realm,
            settings,
        } => {
            let realm = store.require_realm(&realm.subdomain)?;
            let stored = find(store, &realm, &name)?;
            let secret = read_secret(settings.client_secret_file.as_deref(), SECRET_VARIABLE)?;
            let provider = apply(stored, settings, secret)?;
            let audit = changed(&realm, &name, "changed");
            store.update_identity_provider(&provider, &audit)?;
            outln!(
                "changed identity provider {name:?} of realm {:?}",
                realm.subdomain
            )
        }
        IdpCommand::Remove { name, realm } => {
            let realm = store.require_realm(&realm.subdomain)?;
            let stored = find(store, &realm, &name)?;
            let audit = changed(&realm, &name, "removed");
            store.delete_identity_provider(stored.id, &audit)?;
            outln!(
                "removed identity provider {name:?} from realm {:?}",
                realm.subdomain
            )
        }
    }
}

/// The realm's provider of this name, or a one-line error.
fn find(store: &Store, realm: &Realm, name: &str) -> Result<Provider, Error> {
    match store
        .identity_providers(realm.id)?
        .into_iter()
        .find(|p| p.name == name)
    {
        Some(found) => Ok(found),
        None => invalid!(
            "realm {:?} has no identity provider named {name:?}",
            realm.subdomain
        ),
    }
}

/// `provider` with the settings given, checked whole.
fn apply(
    mut provider: Provider,
    settings: IdpArgs,
    secret: Option<String>,
) -> Result<Provider, Error> {
    if let Some(issuer) = settings.issuer {
        provider.issuer = issuer;
    }
    if let Some(client_id) = settings.client_id {
        no_controls("client id", &client_id)?;
        provider.client_id = client_id;
    }
    if let Some(secret) = secret {
        provider.client_secret = secret;
    }
    if let Some(display_name) = settings.display_name {
        no_controls("display name", &display_name)?;
        if display_name.trim().is_empty() {
            return invalid!("the display name must not be empty");
        }
        provider.display_name = display_name;
    }
    if let Some(icon) = settings.display_icon {
        provider.display_icon = (icon != "none").then_some(icon);
    }
    if let Some(scopes) = settings.scopes {
        provider.scopes =
            config::parse_scopes(&scopes).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    if let Some(auto_signup) = settings.auto_signup {
        provider.auto_signup = auto_signup == OnOff::On;
    }
    provider
        .check()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(provider)
}

/// The audit row of a change: which provider, and what happened to it.
fn changed(realm: &Realm, name: &str, what: &str) -> AuditEntry {
    AuditEntry {
        detail: Some(format!("identity provider {name} {what} by operator")),
        ..AuditEntry::new(AuditEvent::RealmChanged, Some(realm.id), None)
    }
}

fn list(providers: &[Provider], json: bool) -> Result<(), Error> {
    /// What is shown of a provider: everything but its secret.
    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        issuer: &'a str,
        client_id: &'a str,
        display_name: &'a str,
        display_icon: Option<&'a str>,
        scopes: &'a str,
        auto_signup: bool,
    }
    let rows: Vec<Row<'_>> = providers
        .iter()
        .map(|p| Row {
            name: &p.name,
            issuer: &p.issuer,
            client_id: &p.client_id,
            display_name: &p.display_name,
            display_icon: p.display_icon.as_deref(),
            scopes: &p.scopes,
            auto_signup: p.auto_signup,
        })
        .collect();
    if json {
        return outln!("{}", json_line(&rows)?);
    }
    print_table(
        &[
            "NAME",
            "ISSUER",
            "CLIENT ID",
            "DISPLAY NAME",
            "ICON",
            "SCOPES",
            "AUTO-SIGNUP",
        ],
        rows.iter().map(|r| {
            vec![
                r.name.to_owned(),
                r.issuer.to_owned(),
                r.client_id.to_owned(),
                r.display_name.to_owned(),
                r.display_icon.unwrap_or("-").to_owned(),
                r.scopes.to_owned(),
                if r.auto_signup { "on" } else { "off" }.to_owned(),
            ]
        }),
    )
}
