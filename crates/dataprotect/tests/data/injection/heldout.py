import json, subprocess, random
import pyarrow.parquet as pq
out = '.'
random.seed(11)
t = pq.read_table('./train.parquet').to_pylist()
random.shuffle(t)
rows = [{'label': 'injection' if r['label'] else 'benign', 'text': r['text']} for r in t[:200]]
with open(f'{out}/heldout_deepset_train.jsonl', 'w') as f:
    for r in rows: f.write(json.dumps(r, ensure_ascii=False) + '\n')
print('deepset heldout', len(rows), sum(r['label']=='injection' for r in rows))
git = ['git', '-C', 'BIPIA', 'show']
emails = [json.loads(l) for l in subprocess.check_output(git + ['HEAD:benchmark/email/train.jsonl']).decode().splitlines() if l.strip()]
attacks = json.loads(subprocess.check_output(git + ['HEAD:benchmark/text_attack_train.json']))
flat = [(k, a) for k, v in attacks.items() for a in v]
random.shuffle(emails); random.shuffle(flat)
rows = []
for e in emails[:50]:
    rows.append({'label': 'benign', 'text': e['context']})
for i, e in enumerate(emails[50:100] if len(emails) >= 100 else emails[:50]):
    cat, a = flat[i % len(flat)]
    ctx = e['context']; pos = i % 3
    if pos == 0: text = a + '\n' + ctx
    elif pos == 1:
        lines = ctx.split('\n'); mid = len(lines)//2; text = '\n'.join(lines[:mid] + [a] + lines[mid:])
    else: text = ctx + '\n' + a
    rows.append({'label': 'injection', 'attack': cat, 'text': text})
with open(f'{out}/heldout_bipia_email_train.jsonl', 'w') as f:
    for r in rows: f.write(json.dumps(r, ensure_ascii=False) + '\n')
print('bipia heldout', len(rows), len(emails), len(flat))
