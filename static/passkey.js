// Passkeys on our pages (web.md §9): the one script the binary serves, under the policy
// `script-src 'self'; connect-src 'self'`. Without it, or without WebAuthn, the buttons stay
// hidden and every page works as before.
//
// A button `<button type="button" hidden data-passkey="create|get">` inside a form: on a
// click, the form's fields (its CSRF token among them) plus `passkey_options=1` are posted to
// the form's own action, which answers the ceremony's options as JSON with its id under
// `ceremony`. The browser asks the authenticator, and the form is submitted as a normal
// form with the fields `ceremony` and `credential` (the credential as JSON, binary values
// as base64url), so the server answers with a page or a redirect (`zulip://login` too).
'use strict';

(() => {
    if (!window.PublicKeyCredential || !navigator.credentials) return;

    // RFC 4648 §5 without padding, as webauthn-rs reads and writes binary values.
    const toBytes = (text) => {
        const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
        const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
        return Uint8Array.from(binary, (c) => c.charCodeAt(0));
    };
    const toText = (buffer) => {
        const binary = String.fromCharCode(...new Uint8Array(buffer));
        return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    };

    const creationOptions = (options) => {
        options.challenge = toBytes(options.challenge);
        options.user.id = toBytes(options.user.id);
        for (const credential of options.excludeCredentials || []) credential.id = toBytes(credential.id);
        return options;
    };
    const requestOptions = (options) => {
        options.challenge = toBytes(options.challenge);
        for (const credential of options.allowCredentials || []) credential.id = toBytes(credential.id);
        return options;
    };

    const credentialJson = (credential) => {
        const answer = credential.response;
        const response = { clientDataJSON: toText(answer.clientDataJSON) };
        if (answer.attestationObject) {
            response.attestationObject = toText(answer.attestationObject);
        } else {
            response.authenticatorData = toText(answer.authenticatorData);
            response.signature = toText(answer.signature);
            if (answer.userHandle) response.userHandle = toText(answer.userHandle);
        }
        return JSON.stringify({
            id: credential.id,
            rawId: toText(credential.rawId),
            type: credential.type,
            response,
            extensions: credential.getClientExtensionResults(),
        });
    };

    const field = (form, name, value) => {
        let input = form.elements.namedItem(name);
        if (!input) {
            input = document.createElement('input');
            input.type = 'hidden';
            input.name = name;
            form.append(input);
        }
        input.value = value;
    };

    const complain = (button, message) => {
        let alert = button.form.querySelector('[data-passkey-error]');
        if (!alert) {
            alert = document.createElement('p');
            alert.className = 'error';
            alert.setAttribute('role', 'alert');
            alert.setAttribute('data-passkey-error', '');
            button.before(alert);
        }
        alert.textContent = message;
    };

    const run = async (button) => {
        const form = button.form;
        const body = new URLSearchParams(new FormData(form));
        body.set('passkey_options', '1');
        const answer = await fetch(form.action, {
            method: 'POST',
            body,
            credentials: 'same-origin',
            headers: { Accept: 'application/json' },
        });
        // A refusal (a wrong password, say) comes with words to show in its `msg`.
        const options = await answer.json().catch(() => ({}));
        if (!answer.ok) throw Object.assign(new Error('options'), { shown: options.msg });
        const credential = button.dataset.passkey === 'create'
            ? await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) })
            : await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
        field(form, 'ceremony', options.ceremony);
        field(form, 'credential', credentialJson(credential));
        form.submit();
    };

    for (const button of document.querySelectorAll('button[data-passkey]')) {
        button.hidden = false;
        button.addEventListener('click', () => {
            button.disabled = true;
            run(button).catch((error) => {
                button.disabled = false;
                complain(button, error.shown || (error.name === 'NotAllowedError'
                    ? 'The passkey request was cancelled or timed out.'
                    : 'The passkey could not be used. Please try again.'));
            });
        });
    }
})();
