"""Reads each form of a JSON list on stdin with Werkzeug's own Request, as
Flask's request.form and request.files do, and writes what it made of
each as a JSON list: the file parts (name, filename, Content-Type, data)
and the field names, in order, or the error that makes Flask's silent
parser hand the app an empty form (or answer 413).

Run with the Werkzeug to test first on sys.path (werkzeug3.tar.gz, as
TestMultipartAgainstWerkzeug unpacks it)."""
import base64
import io
import json
import sys

from werkzeug.formparser import FormDataParser
from werkzeug.wrappers import Request


class LoudParser(FormDataParser):
    """Flask's parser, but saying why it gave up rather than giving the
    app an empty form, so that an empty form and a refused one differ."""

    def __init__(self, **kwargs):
        super().__init__(silent=False, **kwargs)


Request.form_data_parser_class = LoudParser

out = []
for case in json.load(sys.stdin):
    body = base64.b64decode(case["body"])
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": case["content_type"],
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    try:
        req = Request(environ)
        form, files = req.form, req.files
    except Exception as e:  # the silent parser's ValueError, and 413
        out.append({"error": type(e).__name__ + ": " + str(e)})
        continue
    out.append({
        "fields": [name for name, _ in form.items(multi=True)],
        "files": [
            {
                "name": name,
                "filename": f.filename,
                "content_type": f.headers.get("Content-Type", ""),
                "data": base64.b64encode(f.read()).decode(),
            }
            for name, f in files.items(multi=True)
        ],
    })
json.dump({"results": out}, sys.stdout)
