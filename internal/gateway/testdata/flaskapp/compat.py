"""An ordinary, carefully written Flask 3 app, for the compatibility test:
Flask-Login with next= and remember-me, Flask-WTF forms and its CSRF
token sent by fetch() in X-CSRFToken, ProxyFix, an upload, a download
with Range, server-sent events, and a link whose next= is a timestamp.
Its templates put the nonce Rampart passes in X-CSP-Nonce on their
scripts."""
import os
import tempfile
import time

from flask import Flask, Response, abort, jsonify, redirect, render_template_string, request, send_file, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import CSRFProtect, FlaskForm
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "compat-test-" + str(os.getpid()))
app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
csrf = CSRFProtect(app)
login = LoginManager(app)
login.login_view = "login_page"

DOWNLOAD = os.path.join(tempfile.gettempdir(), "rampart-compat-download.bin")
if not os.path.exists(DOWNLOAD):
    with open(DOWNLOAD, "wb") as f:
        f.write(bytes(range(256)) * 4096)  # 1 MiB


class User(UserMixin):
    def __init__(self, name):
        self.id = name


@login.user_loader
def load_user(name):
    return User(name) if name == "alice" else None


class LoginForm(FlaskForm):
    username = StringField("username", validators=[DataRequired()])
    password = PasswordField("password", validators=[DataRequired()])


PAGE = """<!doctype html><html><head><title>{{ title }}</title>
<meta name="csrf-token" content="{{ csrf_token() }}"></head><body>{{ body|safe }}
{% if script %}<script nonce="{{ request.headers.get('X-CSP-Nonce', '') }}">{{ script|safe }}</script>{% endif %}
</body></html>"""


def page(title, body, script=""):
    return render_template_string(PAGE, title=title, body=body, script=script)


@app.route("/login", methods=["GET", "POST"])
def login_page():
    form = LoginForm()
    if form.validate_on_submit():
        if form.username.data == "alice" and form.password.data == "wonderland":
            login_user(User("alice"), remember=True)
            nxt = request.args.get("next", "")
            # Flask-Login's docs: only follow a relative next.
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else url_for("account"))
        abort(401)
    return render_template_string(
        """<!doctype html><title>login</title><form method="post">{{ form.csrf_token }}
{{ form.username(id="username") }} {{ form.password(id="password") }}<button id="go">Log in</button></form>""",
        form=form)


ACCOUNT_SCRIPT = """
const token = document.querySelector('meta[name="csrf-token"]').content;
const out = {};
async function run() {
  let r = await fetch("/api/note", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                                    body: JSON.stringify({text: "hello"})});
  out.json = r.status + " " + (await r.json()).saved;
  const fd = new FormData();
  fd.append("file", new Blob([new Uint8Array(300000)]), "big.bin");
  r = await fetch("/upload", {method: "POST", headers: {"X-CSRFToken": token}, body: fd});
  out.upload = r.status + " " + (await r.text());
  r = await fetch("/download", {headers: {Range: "bytes=256-265"}});
  out.range = r.status + " " + new Uint8Array(await r.arrayBuffer()).join(",");
  r = await fetch("/download");
  out.download = r.status + " " + (await r.arrayBuffer()).byteLength;
  r = await fetch("/download", {headers: {"If-None-Match": r.headers.get("ETag")}});
  out.etag = String(r.status);
  out.sse = await new Promise(done => {
    const got = [], es = new EventSource("/stream");
    es.onmessage = e => { got.push(e.data); if (got.length == 3) { es.close(); done(got.join(",")); } };
    es.onerror = () => { es.close(); done("error after " + got.join(",")); };
  });
  r = await fetch("/events?next=2024-01-01T10:00:00Z&continue=page:2");
  out.next_timestamp = String(r.status);
  out.cookies = document.cookie.includes("session") ? "session readable" : "session httponly";
  document.getElementById("out").textContent = JSON.stringify(out);
  document.title = "done";
}
run().catch(e => { document.getElementById("out").textContent = "error: " + e; document.title = "done"; });
"""


@app.route("/account")
@login_required
def account():
    return page("account", '<p id="who">hello ' + current_user.id + '</p><pre id="out"></pre>', ACCOUNT_SCRIPT)


@app.get("/proxy/<path:target>")
def proxy_target(target):
    # An app that reads a URL out of its path: Werkzeug keeps "//" here.
    return target


@app.post("/callback")
@csrf.exempt  # an OAuth form_post callback: the provider posts it, with its own state
def oauth_callback():
    return "signed in with code " + request.form.get("code", "")


@app.route("/widget")
def widget():
    # A page a partner site frames: it tells its parent it loaded.
    return page("widget", '<p>widget</p>', 'parent.postMessage("framed", "*");')


@app.route("/logout")
def logout():
    logout_user()  # deletes remember_token: Set-Cookie with Max-Age=0, without HttpOnly
    return page("logged out", '<p id="bye">bye</p>')


@app.post("/api/note")
@login_required
def note():
    return jsonify(saved=request.get_json()["text"])


@app.post("/upload")
@login_required
def upload():
    return str(len(request.files["file"].read()))


@app.get("/download")
def download():
    return send_file(DOWNLOAD, mimetype="application/octet-stream", conditional=True, etag=True)


@app.get("/stream")
def stream():
    def events():
        for i in range(3):
            yield f"data: tick{i}\n\n"
            time.sleep(0.05)  # the app's own pacing between events
    return Response(events(), mimetype="text/event-stream")


@app.get("/events")
def events_page():
    return "events"
