// Runs the MDN HTTP Observatory (the npm package @mdn/mdn-http-observatory,
// its own retriever, tests and grader) against one host on given ports,
// and prints the grade, the score and each test's verdict as JSON. It is
// the package's scan() with the ports passed on (scan() always uses 80
// and 443), for the audit's agreement test.
//
//   node scan.mjs PACKAGE_DIR HOSTNAME HTTPS_PORT HTTP_PORT
import { pathToFileURL } from "node:url";
import path from "node:path";

const [dir, hostname, httpsPort, httpPort] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(path.join(dir, p)).href);
const { retrieve } = await load("src/retriever/retriever.js");
const { ALL_TESTS } = await load("src/constants.js");
const { getGradeForScore, getScoreModifier } = await load("src/grader/grader.js");
const { MINIMUM_SCORE_FOR_EXTRA_CREDIT } = await load("src/grader/charts.js");

const r = await retrieve(hostname, { httpsPort, httpPort });
if (!r.responses.auto) {
  console.log(JSON.stringify({ error: "The site seems to be down." }));
  process.exit(1);
}
let withCredit = 100;
let uncurved = 100;
const tests = {};
for (const test of ALL_TESTS) {
  const out = test(r);
  const modifier = getScoreModifier(out.result);
  withCredit += modifier;
  if (modifier < 0) uncurved += modifier;
  tests[out.constructor.name] = { result: out.result, pass: out.pass, modifier };
}
const score = uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? withCredit : uncurved;
const final = getGradeForScore(score);
console.log(JSON.stringify({ grade: final.grade, score: final.score, tests }));
