"""The eval suite: the paper's benchmarks, measurable offline on the shapes world.

    suite.run_eval(config, model, out_dir)      # -> metrics; report.md, metrics.json, figures
    suite.evaluate(...)                         # -> EvalResult(metrics, sections), no report
    detector.parse_image(image, grid)           # any image -> objects (colour, shape, size, cell)

`model` is anything with the EvalModel protocol (protocol.py): generate / edit / answer.
Benchmarks: geneval.py, wise.py, editbench.py (+ quality.py for G_PQ), understanding.py; their
real file formats in benchmark_files.py; the report pieces in report.py and curves.py.
"""
