"""A deliberately careless Flask app, as an outside security test ran one:
the Werkzeug debugger on, the app's folder served as the static root (so
its .env is a file anyone may fetch), and ProxyFix believing every
forwarding header. Straight from gunicorn it gives all of that away; the
tests check that through Rampart none of it is reachable.
"""
import gzip
import os
import traceback
import zlib

from flask import Flask, Response, jsonify, make_response, redirect, request
from werkzeug.debug import DebuggedApplication
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__, static_folder=os.environ["CARELESS_ROOT"], static_url_path="")
app.debug = True


@app.route("/whoami", methods=["GET", "POST"])
def whoami():
    return jsonify(
        remote_addr=request.remote_addr,
        host=request.host,
        scheme=request.scheme,
        script_root=request.script_root,
        path=request.path,
        method=request.method,
        environ_keys=sorted(k for k in request.environ if k.startswith("HTTP_")),
    )


@app.route("/admin/x")
def admin():
    return "admin view"


@app.route("/login", methods=["GET", "POST"])
def login():
    return "login view"


@app.route("/refresh")
def refresh():
    resp = make_response("moving on")
    resp.headers["Refresh"] = "0; url=" + request.args.get("to", "/")
    return resp


@app.route("/go")
def go():
    return redirect(request.args.get("next", "/"))


@app.route("/crash-encoded")
def crash_encoded():
    """A traceback sent compressed, as behind a compression middleware."""
    try:
        raise RuntimeError("secret internal detail: DATABASE_PASSWORD=hunter2")
    except RuntimeError:
        body = ("x" * int(request.args.get("prefix", "0")) + traceback.format_exc()).encode()
    coding = request.args.get("coding", "gzip")
    data = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    return Response(data, status=int(request.args.get("status", "500")),
                    headers={"Content-Encoding": coding, "Content-Type": "text/plain"})


@app.route("/get-only")
def get_only():
    return "only GET"


application = DebuggedApplication(ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1), evalex=True)


@app.route("/cached-page")
def cached_page():
    """A page with the CSP nonce in it, marked for shared caches."""
    nonce = request.headers.get("X-CSP-Nonce", "")
    resp = make_response(f'<!doctype html><script nonce="{nonce}">document.title="hi"</script>')
    resp.headers["Cache-Control"] = "public, max-age=600, s-maxage=3600"
    return resp


@app.route("/echo-error", methods=["POST"])
def echo_error():
    """A 400 that echoes the input back, then the traceback it caught."""
    try:
        raise ValueError("secret internal detail: DATABASE_PASSWORD=hunter2")
    except ValueError:
        body = "bad input: " + request.get_data(as_text=True) + "\n" + traceback.format_exc()
    return Response(body, status=400, mimetype="text/plain")


@app.route("/api/fail")
def api_fail():
    """A JSON error with the frames of its traceback, without the header."""
    try:
        raise RuntimeError("secret internal detail: DATABASE_PASSWORD=hunter2")
    except RuntimeError as e:
        return jsonify(error=str(e.__class__.__name__), trace=traceback.format_tb(e.__traceback__)), 500
