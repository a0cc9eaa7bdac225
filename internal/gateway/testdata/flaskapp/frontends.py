"""The front ends Flask apps reach for, as their docs show them, for the
compatibility test: Swagger UI through flasgger (/apidocs/), a Plotly
figure written by plotly's own to_html (/plot), and htmx with an hx-on
attribute and its loading indicator (/htmx). Debian ships flasgger and
plotly (with plotly.js); htmx comes from npm, at $HTMX_JS."""
import os

import plotly.graph_objects as go
from flasgger import Swagger
from flask import Flask, request, send_file

app = Flask(__name__)
Swagger(app)


@app.get("/api/colors")
def colors():
    """The colours of the palette.
    ---
    responses:
      200:
        description: a list of colours
    """
    return {"colors": ["red", "green"]}


@app.get("/plotly.js")
def plotly_js():
    return send_file("/usr/share/python3-plotly/plotly.js", mimetype="text/javascript")


@app.get("/plot")
def plot():
    fig = go.Figure(go.Bar(x=["a", "b", "c"], y=[1, 3, 2]))
    return fig.to_html(include_plotlyjs="/plotly.js", full_html=True)


@app.get("/htmx.js")
def htmx_js():
    return send_file(os.environ["HTMX_JS"], mimetype="text/javascript")


@app.get("/htmx")
def htmx_page():
    nonce = request.headers.get("X-CSP-Nonce", "")
    # htmx adds a <style> for .htmx-indicator; under a nonce it needs
    # htmx.config.inlineStyleNonce, set here from the request when asked.
    config = f'<meta name="htmx-config" content=\'{{"inlineStyleNonce": "{nonce}"}}\'>' if request.args.get("nonce") else ""
    return f"""<!doctype html><html><head><title>htmx</title>{config}
<script src="/htmx.js"></script></head><body>
<button id="load" hx-get="/htmx/fragment" hx-target="#out">load</button>
<button id="clicked" hx-on:click="this.textContent = 'ran'">click</button>
<span id="spinner" class="htmx-indicator">loading</span>
<div id="out"></div></body></html>"""


@app.get("/htmx/fragment")
def htmx_fragment():
    return "<p id='fragment'>swapped in</p>"
