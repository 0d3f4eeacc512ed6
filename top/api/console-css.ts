// The console's style (served at /console.css): plain CSS, one column on a phone, a grid of buckets.
export const consoleCss = `*{box-sizing:border-box} [hidden]{display:none!important}
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#fff;border-bottom:1px solid #ddd;padding:.8em 1.2em;display:flex;flex-wrap:wrap;align-items:center;gap:.3em 1.2em}
h1{font-size:1.3em;margin:0} h2{font-size:1.1em;margin:1.2em 0 .5em} .sub{color:#666;flex:1 1 20em}
main{padding:0 1.2em 2em;max-width:1340px}
nav{display:flex;flex-wrap:wrap;gap:.3em;width:100%} nav a{padding:.35em .8em;border-radius:4px;text-decoration:none;color:#1565c0;background:#eef3fb}
nav a.on{background:#1565c0;color:#fff}
#me{color:#555;margin-left:auto} button.locked{color:#888;border-style:dashed} button{font:inherit;padding:.3em .8em;border:1px solid #bbb;border-radius:4px;background:#fff;cursor:pointer}
button:hover{background:#f0f0f0} button.danger{background:#c62828;color:#fff;border-color:#c62828}
button.act{margin:.1em .15em;padding:.15em .55em;font-size:.9em}
table{border-collapse:collapse;margin:0 0 1.2em;background:#fff;box-shadow:0 1px 2px #0002;width:100%}
th,td{padding:.4em .7em;border-bottom:1px solid #eee;text-align:left;vertical-align:top} th{background:#f0f0f0}
.wrap{overflow-x:auto}
.s{display:inline-block;min-width:4.5em;text-align:center;border-radius:3px;padding:.1em .4em;font-weight:600;color:#fff;background:#757575}
.UP,.PRIM,.ALONE{background:#2e7d32} .SECOND{background:#1565c0} .WAIT{background:#ef6c00} .STOP,.DOWN{background:#9e9e9e}
.MAINT{background:#6a1b9a;min-width:0;font-size:.8em}
#err,.bad{color:#b71c1c} #warn,.differs{color:#e65100;font-weight:600} .ok{color:#2e7d32} .muted{color:#777}
#live{color:#2e7d32} #live.off{color:#b71c1c}
#login{background:#fff;max-width:22em;padding:1em 1.5em;margin:2em auto;box-shadow:0 1px 3px #0003;display:flex;flex-direction:column;gap:.6em}
#login label{display:flex;flex-direction:column;gap:.2em} #login input{font:inherit;padding:.35em} .or{color:#888;text-align:center}
#result{margin:1em 0;padding:.6em .9em;border-radius:4px;background:#e8f5e9;border:1px solid #a5d6a7}
#result.bad{background:#ffebee;border-color:#ef9a9a;color:#b71c1c}
dialog{max-width:32em;border:1px solid #999;border-radius:6px} dialog p{font-size:1.05em} .buttons{text-align:right}
.cards{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1em} .card{background:#fff;box-shadow:0 1px 2px #0002;padding:.8em 1em;flex:1 1 18em}
.card h3{margin:0 0 .5em;font-size:1em} .kv{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em}
.kv dt{color:#666} .kv dd{margin:0}
progress{width:100%;height:1.3em}
.map{display:grid;grid-template-columns:repeat(64,1fr);gap:1px;background:#ddd;border:1px solid #ddd;max-width:1024px;margin-bottom:1em}
.map i{display:block;aspect-ratio:1;background:#fff} .map i.hit{outline:2px solid #000;position:relative;z-index:1}
.legend{display:flex;flex-wrap:wrap;gap:.5em 1.5em;margin:.5em 0 1em} .sw{display:inline-block;width:1em;height:1em;vertical-align:-.15em;margin-right:.3em;border-radius:2px}
.c0{background:#1e88e5!important} .c1{background:#43a047!important} .c2{background:#fb8c00!important} .c3{background:#8e24aa!important}
.c4{background:#00acc1!important} .c5{background:#e53935!important} .c6{background:#6d4c41!important} .c7{background:#fdd835!important} .cn{background:#fff!important}
.filters{display:flex;flex-wrap:wrap;gap:.5em 1em;margin:.5em 0} .filters select,.filters input,.who input{font:inherit;padding:.25em}
pre.log{background:#111;color:#ddd;padding:.8em;height:60vh;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
pre.out{background:#f4f4f4;margin:.3em 0 0;padding:.4em;font-size:12px;white-space:pre-wrap;max-height:12em;overflow:auto}
.k-failover,.k-split_brain{color:#b71c1c;font-weight:600} .k-checker{color:#e65100}
.show-s{display:none}
@media (max-width:700px){header{padding:.6em} main{padding:0 .6em 2em} th,td{padding:.3em .4em} .map{grid-template-columns:repeat(32,1fr)} .hide-s{display:none} .show-s{display:table-row}}
`;
