"""An ordinary Flask app for the WAF's false-positive corpus.

Every route answers with what Werkzeug parsed from the request: the query,
the form, the JSON and each uploaded file's name and SHA-256, so a test can
check that what the user sent reached the app whole.
"""
import hashlib

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def parsed(path):
    files = {}
    for name, f in request.files.items(multi=True):
        data = f.read()
        files[name] = {"filename": f.filename, "sha256": hashlib.sha256(data).hexdigest()}
    return jsonify(
        path="/" + path,
        args=request.args.to_dict(flat=False),
        form=request.form.to_dict(flat=False),
        json=request.get_json(silent=True),
        files=files,
    )
