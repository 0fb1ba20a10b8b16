"""The SKLearn 1.2-1 container's training main and serving call chain, our small equivalent.

Runs inside the cached Python 3.9 venv (container_replay.container_venv), never under pytest: keep it
Python 3.9-compatible and free of project imports. It calls only public modules of the
``sagemaker-training`` package installed from PyPI (the version the container pins).

    python container_replay_py39.py train
        What the image runs for a training job: its ``train`` command is
        ``sagemaker_training.cli.train:main`` → ``trainer.train()``, which imports the module named by
        SAGEMAKER_TRAINING_MODULE and calls it. The container sets that to
        ``sagemaker_sklearn_container.training:main``; the harness sets it to ``training_main`` below.

    python container_replay_py39.py serve <invocations.json> <responses.json>
        The handler chain of the container's serving stack for each invocation (see ``serve``).
"""

from __future__ import absolute_import

import base64
import importlib
import json
import os
import sys
import traceback

JSON = "application/json"
CSV = "text/csv"
ANY = "*/*"
UTF8_TYPES = [JSON, CSV]  # the content types the serving stack hands to input_fn as text


def training_main():
    """Our equivalent of the container's training main (its training.py: ``train(environment.Environment())``).

    The container hands the whole job to the toolkit: the submit directory (an S3 URI), the program,
    the hyperparameters as command-line arguments and the environment, with the default process
    runner and no ``capture_error`` (so the toolkit starts the script with subprocess.Popen on an
    argument list). The arguments are also written to REPLAY_ARGS_FILE so the harness can report the
    exact list (the toolkit's log joins it with spaces, which hides empty arguments).
    """
    from sagemaker_training import entry_point, environment, runner

    args_file = os.environ.pop("REPLAY_ARGS_FILE", None)
    # Diagnostic only, never set by the tests: the toolkit's other way of starting the script
    # (capture_error=True joins the command with spaces and runs it through /bin/sh).
    extra = {"capture_error": True} if os.environ.pop("REPLAY_CAPTURE_ERROR", "") == "1" else {}
    env = environment.Environment()
    args = env.to_cmd_args()
    if args_file:
        with open(args_file, "w") as fh:
            json.dump(args, fh)
    entry_point.run(uri=env.module_dir, user_entry_point=env.user_entry_point, args=args,
                    env_vars=env.to_env_vars(), runner_type=runner.ProcessRunnerType, **extra)


def _module_name(program):
    """SAGEMAKER_PROGRAM → module name, as the serving environment parses it ("train.py" → "train")."""
    return program[:-3] if program.endswith(".py") else program


def _response_content_type(mimetype):
    """What the HTTP response says for a mimetype (werkzeug adds the charset to text types)."""
    try:
        from werkzeug.utils import get_content_type

        return get_content_type(mimetype, "utf-8")
    except ImportError:  # pragma: no cover - werkzeug comes with sagemaker-training
        return mimetype


def serve(spec_path, answers_path):
    """Load the model once, then answer each invocation as the container's serving stack does.

    * the user module: the code tarball (SAGEMAKER_SUBMIT_DIRECTORY) is unpacked into the code folder
      and ``SAGEMAKER_PROGRAM`` minus ``.py`` is imported (the container pip-installs that folder and
      imports the module; importing it from the folder runs the same file);
    * ``model = model_fn(model_dir)`` once per worker, model_dir being /opt/ml/model;
    * per request: content type from the ``ContentType`` or ``Content-Type`` header, else
      application/json; the body is text (UTF-8) when the content type is exactly application/json or
      text/csv, else bytes; Accept from the header, else, when missing or ``*/*``,
      SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT or application/json;
    * ``input_fn(body, content_type)`` → ``predict_fn(data, model)`` → ``output_fn(prediction, accept)``;
      a tuple is answered as (body, mimetype), anything else as the view's return value; an exception
      from any of them is a 500 (the container wraps user functions so their errors reach Flask).
    """
    from sagemaker_training import environment, files

    program = os.environ["SAGEMAKER_PROGRAM"]
    files.download_and_extract(uri=os.environ["SAGEMAKER_SUBMIT_DIRECTORY"], path=environment.code_dir)
    sys.path.insert(0, environment.code_dir)
    module = importlib.import_module(_module_name(program))
    model = module.model_fn(environment.model_dir)
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)

    with open(spec_path) as fh:
        invocations = json.load(fh)
    answers = []
    for inv in invocations:
        raw = base64.b64decode(inv["body"])
        content_type = inv.get("content_type") or JSON
        accept = inv.get("accept")
        if not accept or accept == ANY:
            accept = default_accept
        content = raw.decode("utf-8", "replace") if content_type in UTF8_TYPES else raw
        answer = {"name": inv.get("name", ""), "status": 200, "body": "", "content_type": "", "error": ""}
        try:
            data = module.input_fn(content, content_type)
            prediction = module.predict_fn(data, model)
            result = module.output_fn(prediction, accept)
            if isinstance(result, tuple):
                body, mimetype = result[0], result[1]
            else:
                body, mimetype = result, "text/html"  # Flask's default for a view returning a string
            if not isinstance(body, bytes):
                body = str(body).encode("utf-8")
            answer.update(body=base64.b64encode(body).decode(), content_type=_response_content_type(mimetype))
        except Exception as err:  # noqa: BLE001 - the container turns any of them into a 500
            answer.update(status=500, error="%s: %s" % (type(err).__name__, err),
                          body=base64.b64encode(b"Internal Server Error").decode(),
                          content_type=_response_content_type("text/html"))
            traceback.print_exc()
        answers.append(answer)
    with open(answers_path, "w") as fh:
        json.dump(answers, fh)


def main(argv):
    if argv[:1] == ["train"]:
        from sagemaker_training.cli.train import main as train

        train()  # exits with the job's exit code
    elif argv[:1] == ["serve"] and len(argv) == 3:
        serve(argv[1], argv[2])
    else:
        sys.stderr.write("usage: container_replay_py39.py train | serve <invocations.json> <responses.json>\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
