//! Two small self-contained pages (no external scripts or styles, so they work on a
//! hospital network with no internet): registering a data provider, and making a key pair
//! to try the consumer with. Both only call the consumer's own JSON endpoints.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d2430; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
label { display: block; font-weight: 600; margin-top: 1rem; }
.hint { font-weight: normal; color: #5a6472; font-size: .9em; }
input[type=text], input[type=url], textarea { width: 100%; box-sizing: border-box; font: 13px ui-monospace, monospace; padding: .4rem; border: 1px solid #b8c0cc; border-radius: 4px; }
textarea { min-height: 7rem; }
button { margin-top: 1rem; padding: .5rem 1.1rem; font: inherit; border: 0; border-radius: 4px; background: #2357c6; color: #fff; cursor: pointer; }
button.secondary { background: #e4e9f2; color: #1d2430; }
.result { margin-top: 1rem; padding: .8rem; border-radius: 4px; background: #eaf6ec; white-space: pre-wrap; font: 13px ui-monospace, monospace; }
.error { background: #fbeaea; }
table { border-collapse: collapse; margin-top: .5rem; } td { padding: .2rem .8rem .2rem 0; vertical-align: top; font-size: .92em; }
td:first-child { color: #5a6472; } nav a { margin-right: 1rem; }
"#;

fn html(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /`: register a data provider, and what this consumer is.
pub(crate) async fn register_page(State(s): State<std::sync::Arc<Shared>>) -> Response {
    let origin = escape(&s.origin);
    let closed = if s.config.registration {
        String::new()
    } else {
        "<p class=\"result error\">Registration is switched off on this consumer.</p>".into()
    };
    html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stratus import consumer: register a data provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<nav><a href="/">Register a provider</a><a href="/keys">Key generator</a></nav>
<h1>Register a data provider</h1>
<p>A data provider pings this consumer with <code>POST {origin}/$import</code>; the consumer then pulls the export from the provider.
Each side is a SMART Backend Services client of the other, so registering needs both halves.</p>
{closed}
<form id="register">
<label>The provider's public keys
  <span class="hint">paste a JWKS (or a single public JWK), or give its URL below</span></label>
<textarea id="jwks" name="jwks" placeholder='{{"keys":[{{"kty":"EC","crv":"P-384",...}}]}}'></textarea>
<label>…or a JWKS URL <span class="hint">fetched once, now; register again to rotate keys</span></label>
<input type="url" id="jwks_uri" name="jwks_uri" placeholder="https://provider.example.org/.well-known/jwks.json">
<label>This consumer's client id at the provider
  <span class="hint">the provider registered <a href="/jwks">this consumer's public key</a> and gave it this id</span></label>
<input type="text" id="consumer_client_id" name="consumer_client_id" required>
<label>The provider's FHIR base URL(s) <span class="hint">one per line; an exportUrl must lie under one of them</span></label>
<textarea id="provider_base_url" name="provider_base_url" style="min-height:3rem" placeholder="https://ehr.example.org/fhir"></textarea>
<label>The provider's token endpoint <span class="hint">optional: empty to discover it from the base, <code>none</code> for a provider that wants no token</span></label>
<input type="text" id="token_endpoint" name="token_endpoint">
<label>Registration secret <span class="hint">if this consumer was started with one</span></label>
<input type="password" id="registration_secret" name="registration_secret" autocomplete="off">
<button type="submit" id="submit">Register</button>
</form>
<div id="out" hidden></div>
<h2>This consumer</h2>
<table>
<tr><td>Kick-off</td><td><code>POST {origin}/$import</code></td></tr>
<tr><td>Token endpoint</td><td><code>{origin}/auth/token</code></td></tr>
<tr><td>Registration</td><td><code>POST {origin}/auth/register</code></td></tr>
<tr><td>SMART configuration</td><td><a href="/.well-known/smart-configuration"><code>{origin}/.well-known/smart-configuration</code></a></td></tr>
<tr><td>Its public key</td><td><a href="/jwks"><code>{origin}/jwks</code></a> (register it with the provider)</td></tr>
</table>
<script>
function wrapJwks(text) {{
  const v = JSON.parse(text);
  return Array.isArray(v.keys) ? v : {{ keys: [v] }};
}}
document.getElementById('register').addEventListener('submit', async (ev) => {{
  ev.preventDefault();
  const out = document.getElementById('out');
  const show = (text, bad) => {{ out.hidden = false; out.className = bad ? 'result error' : 'result'; out.textContent = text; }};
  const body = {{
    consumer_client_id: document.getElementById('consumer_client_id').value.trim(),
    provider_base_url: document.getElementById('provider_base_url').value.split(/\s+/).filter(Boolean),
  }};
  const jwks = document.getElementById('jwks').value.trim();
  const uri = document.getElementById('jwks_uri').value.trim();
  const token = document.getElementById('token_endpoint').value.trim();
  if (token) body.token_endpoint = token;
  const secret = document.getElementById('registration_secret').value;
  if (secret) body.registration_secret = secret;
  try {{
    if (jwks) body.jwks = wrapJwks(jwks); else if (uri) body.jwks_uri = uri;
  }} catch (e) {{ return show('The keys are not JSON: ' + e.message, true); }}
  const resp = await fetch('/auth/register', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify(body) }});
  const answer = await resp.json().catch(() => ({{}}));
  if (!resp.ok) return show('Refused: ' + (answer.error_description || answer.error || resp.status), true);
  show('Registered. The provider\'s client id here is\n\n' + answer.client_id +
       '\n\nToken endpoint: ' + answer.token_endpoint + '\nKick-off: ' + answer.import_url, false);
  out.dataset.clientId = answer.client_id;
}});
</script>
</body></html>"#
    ))
}

/// `GET /keys`: make a key pair in the consumer (for trying things out) and fill the
/// registration form with its public half.
pub(crate) async fn keys_page() -> Response {
    html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stratus import consumer: key generator</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<nav><a href="/">Register a provider</a><a href="/keys">Key generator</a></nav>
<h1>Key generator</h1>
<p>Makes a key pair for SMART Backend Services, for trying this consumer out. The private key is made on this server
and is not kept, but it has crossed the network: for real use make keys where they will live,
with <code>stratus keys generate</code>.</p>
<label>Algorithm</label>
<select id="alg"><option>ES384</option><option>RS384</option></select>
<button id="generate" type="button">Generate</button>
<div id="keys" hidden>
<label>Public JWKS <span class="hint">register this (paste it on the registration page)</span></label>
<textarea id="public" readonly></textarea>
<label>Private JWKS <span class="hint">the signing key: save it as a file and give it to <code>stratus import kickoff --key</code></span></label>
<textarea id="private" readonly></textarea>
<label>Private key as PEM</label>
<textarea id="pem" readonly></textarea>
<button id="download" type="button" class="secondary">Download the private JWKS</button>
</div>
<div id="out" hidden></div>
<script>
document.getElementById('generate').addEventListener('click', async () => {{
  const out = document.getElementById('out');
  const alg = document.getElementById('alg').value;
  const resp = await fetch('/generator?alg=' + encodeURIComponent(alg));
  const k = await resp.json().catch(() => ({{}}));
  if (!resp.ok) {{ out.hidden = false; out.className = 'result error'; out.textContent = JSON.stringify(k); return; }}
  document.getElementById('public').value = JSON.stringify(k.jwks, null, 2);
  document.getElementById('private').value = JSON.stringify(k.privateJwks, null, 2);
  document.getElementById('pem').value = k.privateAsPEM;
  document.getElementById('keys').hidden = false;
}});
document.getElementById('download').addEventListener('click', () => {{
  const blob = new Blob([document.getElementById('private').value], {{ type: 'application/json' }});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'provider.jwks'; a.click();
}});
</script>
</body></html>"#
    ))
}
