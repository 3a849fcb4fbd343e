"""The report's stylesheet, inlined in the page (no external CSS, fonts or scripts)."""

CSS = """
:root { --ink:#101828; --muted:#475467; --faint:#667085; --line:#e4e7ec; --bg:#f8f9fb;
  --card:#fff; --smoke:#b54708; --smoke-bg:#fffaeb; --proj:#6941c6; --proj-bg:#f4f3ff;
  --res:#067647; --res-bg:#ecfdf3; --est:#b54708; --meas:#175cd3; --meas-bg:#eff8ff;
  --bad:#b42318; --bad-bg:#fef3f2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); line-height:1.45;
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
main, header.top > div { max-width:1320px; margin:0 auto; padding:0 28px; }
header.top { background:#0c111d; color:#f2f4f7; padding:26px 0 20px; }
header.top h1 { margin:0 0 4px; font-size:26px; letter-spacing:-.01em; }
header.top .lede { margin:0 0 14px; color:#cfd4dc; font-size:15px; }
header.top dl { display:flex; flex-wrap:wrap; gap:6px 28px; margin:0 0 14px; font-size:13px; }
header.top dt { color:#98a2b3; } header.top dd { margin:0; font-family:ui-monospace,monospace; }
header.top table { border-collapse:collapse; font-size:13px; width:100%; }
header.top th, header.top td { text-align:left; padding:5px 14px 5px 0;
  border-bottom:1px solid #344054; }
header.top th { color:#98a2b3; font-weight:500; }
h2 { font-size:22px; margin:36px 0 6px; display:flex; align-items:center; gap:10px; }
h3 { font-size:16px; margin:22px 0 6px; display:flex; align-items:center; gap:8px; }
h4 { font-size:13px; margin:14px 0 4px; color:var(--muted); text-transform:uppercase;
  letter-spacing:.04em; }
.chip { display:inline-block; font-size:11.5px; font-weight:600; padding:1px 8px;
  border-radius:999px; border:1px solid currentColor; white-space:nowrap;
  vertical-align:middle; letter-spacing:.01em; }
.chip.smoke { color:var(--smoke); background:var(--smoke-bg); }
.chip.projection { color:var(--proj); background:var(--proj-bg); }
.chip.result, .chip.scored { color:var(--res); background:var(--res-bg); }
.chip.estimated { color:var(--est); background:#fff; border-style:dashed; }
.chip.measured { color:var(--meas); background:var(--meas-bg); }
.chip.none, .chip.incomplete, .chip.mixed { color:var(--faint); background:#f2f4f7; }
.chip.doubted, .chip.invalid, .chip.failed, .chip.lost { color:var(--bad);
  background:var(--bad-bg); }
.chip.win { color:#fff; background:#067647; border-color:#067647; }
.glance { display:grid; grid-template-columns:repeat(auto-fit,minmax(340px,1fr)); gap:14px;
  margin:22px 0 4px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding:14px 16px; box-shadow:0 1px 2px rgba(16,24,40,.05); }
.card .bench { font-weight:700; font-size:16px; display:flex; gap:8px; align-items:center; }
.callouts { display:grid; grid-template-columns:repeat(auto-fit,minmax(280px,1fr)); gap:12px;
  margin:10px 0 14px; }
.card .callouts { grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); margin-bottom:0; }
.card .callout .who { font-size:17px; }
.callout { background:var(--card); border:1px solid var(--line); border-left:5px solid #067647;
  border-radius:10px; padding:10px 14px; }
.callout.none { border-left-color:#98a2b3; }
.callout.estimated { border-left-color:var(--est); }
.callout .what { font-size:12px; color:var(--muted); text-transform:uppercase;
  letter-spacing:.04em; font-weight:600; }
.callout .who { font-size:20px; font-weight:700; margin:2px 0; word-break:break-word; }
.callout .fig { font-size:15px; font-weight:600; color:var(--ink); }
.callout .detail { font-size:12.5px; color:var(--muted); }
.callout .caveat { font-size:12.5px; color:var(--bad); margin-top:3px; }
.explain { color:var(--muted); margin:2px 0 8px; font-size:13px; }
.tablewrap { overflow-x:auto; background:var(--card); border:1px solid var(--line);
  border-radius:10px; }
table.devices, table.runs { border-collapse:collapse; width:100%; font-size:12.5px; }
table.devices th, table.runs th { text-align:left; font-weight:600; color:var(--muted);
  font-size:12px; background:#f9fafb; padding:8px 10px; border-bottom:1px solid var(--line);
  white-space:nowrap; }
table.devices td, table.runs td { padding:8px 8px; border-bottom:1px solid var(--line);
  vertical-align:top; }
table.devices tr:last-child td, table.runs tr:last-child td { border-bottom:0; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
td.num .v { white-space:nowrap; }
table.devices td:last-child { min-width:150px; }
td.num b { font-size:14.5px; }
.sub { display:block; color:var(--faint); font-size:11.5px; font-weight:400;
  white-space:normal; }
.device { font-weight:700; overflow-wrap:anywhere; }
table.devices td:first-child { min-width:150px; max-width:240px; }
.status { margin-top:4px; }
table.devices td:nth-child(2), table.devices td:nth-child(3) { min-width:150px; }
.prov { color:var(--faint); font-size:11.5px;
  font-family:ui-monospace,"DejaVu Sans Mono",monospace; overflow-wrap:anywhere; }
table.devices tr.main td { border-bottom:0; padding-bottom:2px; }
table.devices tr.prov-row td { padding-top:0; }
.notes { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:4px 16px 10px; margin:12px 0; }
.notes ul { margin:4px 0; padding-left:20px; } .notes li { margin:3px 0; font-size:13px; }
.notes li.doubt::marker { color:var(--bad); }
.plots { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:14px;
  align-items:start;
  margin:14px 0; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:10px; }
figure.wide { grid-column:1/-1; }
figure svg { max-width:100%; height:auto; display:block; margin:0 auto; }
figcaption { color:var(--faint); font-size:12px; margin-top:4px; }
.empty { color:var(--faint); font-style:italic; }
section.bench { border-top:1px solid var(--line); margin-top:30px; }
footer { max-width:1320px; margin:40px auto 30px; padding:0 28px; color:var(--muted);
  font-size:12.5px; }
footer dt { font-weight:600; color:var(--ink); margin-top:6px; } footer dd { margin:0; }
"""
