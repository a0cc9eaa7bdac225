"""A Flask app for the audit's tests, configured by the environment to be
careless or careful. Run under gunicorn."""
import os

from flask import Flask, flash, redirect, request, session
from werkzeug.debug import DebuggedApplication

app = Flask(__name__)
app.secret_key = os.environ["AUDIT_SECRET_KEY"]
# Quiet: no page sets a cookie until a login is tried, as in most apps
# with a login form (the session holds the flashed error).
QUIET = os.environ.get("AUDIT_QUIET") == "1"


@app.route("/", methods=["GET", "TRACE"])
def index():
    if request.method == "TRACE":
        # What TRACE does where it is not refused: echo the request.
        head = f"TRACE {request.full_path} HTTP/1.1\n" + "".join(f"{k}: {v}\n" for k, v in request.headers.items())
        return head, 200, {"Content-Type": "message/http"}
    if QUIET:
        return '<!doctype html><html><body><h1>audit app</h1><a href="/login">sign in</a></body></html>'
    session["user"] = "alice"
    if os.environ.get("AUDIT_LEAKY") == "1":
        session["password"] = "hunter2"
        session["api_token"] = "tok_live_123"
    return '<!doctype html><html><body><h1>audit app</h1><a href="/account">account</a> <a href="/logout">log out</a></body></html>'


@app.route("/account")
def account():
    # A page only the crawl finds: its cookie, set without any flag.
    resp = app.make_response('<!doctype html><html><body>settings <form method=post action=/upload enctype=multipart/form-data>'
                             '<input type=file name=avatar><button>upload</button></form></body></html>')
    if not QUIET:
        resp.set_cookie("prefs", "dark", httponly=False)
    return resp


@app.route("/logout")
def logout():
    raise RuntimeError("the crawl must never follow a log-out link")


@app.route("/login", methods=["GET", "POST"])
def login():
    nxt = request.values.get("next") or request.values.get("url")
    if nxt:
        return redirect(nxt)  # the classic open redirect
    if request.method == "POST":
        flash("Wrong username or password.")
        return "wrong password", 200
    return "<form method=post><input name=username><input name=password type=password></form>"


@app.route("/upload", methods=["POST"])
def upload():
    # Takes any file, as a view that saves under f.filename would; it
    # keeps nothing, so the audit's probes leave no file behind.
    f = request.files.get("avatar")
    return f"took {f.filename}" if f else ("no file", 400)


@app.route("/admin/")
def admin():
    return "<!doctype html><title>admin</title><h1>Users</h1>"  # no login at all


@app.route("/boom")
def boom():
    raise RuntimeError("DATABASE_PASSWORD=hunter2")


if os.environ.get("AUDIT_DEBUG") == "1":
    app.debug = True
    application = DebuggedApplication(app, evalex=True)
else:
    application = app
