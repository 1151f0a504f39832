import json, re, glob, os, subprocess, random
import pyarrow.parquet as pq
out = '.'
random.seed(7)

def w(name, rows):
    with open(f'{out}/{name}', 'w') as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + '\n')
    print(name, len(rows), sum(r['label']=='injection' for r in rows))

# deepset/prompt-injections, test split (Apache-2.0), via the MIT-licensed mirror.
t = pq.read_table('./test.parquet').to_pylist()
w('deepset.jsonl', [{'label': 'injection' if r['label'] else 'benign', 'text': r['text']} for r in t])

# BIPIA (MIT): EmailQA test contexts, clean and with a text attack inserted.
git = ['git', '-C', 'BIPIA', 'show']
emails = [json.loads(l) for l in subprocess.check_output(git + ['HEAD:benchmark/email/test.jsonl']).decode().splitlines() if l.strip()]
attacks = json.loads(subprocess.check_output(git + ['HEAD:benchmark/text_attack_test.json']))
flat = [(k, a) for k, v in attacks.items() for a in v]
rows = []
for i, e in enumerate(emails):
    rows.append({'label': 'benign', 'text': e['context']})
for i, e in enumerate(emails):
    cat, a = flat[(i * 3) % len(flat)]
    ctx = e['context']
    # BIPIA inserts at the start, middle or end of the context.
    pos = i % 3
    if pos == 0:
        text = a + '\n' + ctx
    elif pos == 1:
        lines = ctx.split('\n'); mid = len(lines) // 2
        text = '\n'.join(lines[:mid] + [a] + lines[mid:])
    else:
        text = ctx + '\n' + a
    rows.append({'label': 'injection', 'attack': cat, 'text': text})
w('bipia_email.jsonl', rows)

# Benign prose from published crate READMEs (MIT or Apache-2.0 per their Cargo.toml).
paras = []
for readme in sorted(glob.glob(os.path.expanduser('~/.cargo/registry/src/*/*/README.md'))):
    crate = os.path.basename(os.path.dirname(readme))
    try:
        toml = open(os.path.join(os.path.dirname(readme), 'Cargo.toml')).read()
    except OSError:
        continue
    m = re.search(r'^license\s*=\s*"([^"]+)"', toml, re.M)
    if not m or not re.search(r'MIT|Apache-2.0', m.group(1)):
        continue
    text = open(readme, errors='replace').read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for p in re.split(r'\n\s*\n', text):
        p = p.strip()
        if 250 <= len(p) <= 1200 and not p.startswith(('|', '[!', '<', '#', '[![')) and p.count('http') < 3:
            paras.append({'label': 'benign', 'crate': crate, 'license': m.group(1), 'text': p})
random.shuffle(paras)
# One paragraph per crate, so no crate dominates.
seen, picked = set(), []
for p in paras:
    name = p['crate'].rsplit('-', 1)[0]
    if name in seen: continue
    seen.add(name); picked.append(p)
    if len(picked) == 120: break
w('crate_docs.jsonl', picked)
