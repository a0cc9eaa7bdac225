"""A Flask app run the way the seed checklists warn against: under the
Werkzeug debugger. Rampart must keep its tracebacks and console from
clients."""
from flask import Flask
from werkzeug.debug import DebuggedApplication

app = Flask(__name__)
app.debug = True  # exceptions propagate to the debugger, as under `flask run --debug`


@app.route("/")
def index():
    return "debug app"


@app.route("/boom")
def boom():
    raise RuntimeError("secret internal detail: DATABASE_PASSWORD=hunter2")


application = DebuggedApplication(app, evalex=True)
