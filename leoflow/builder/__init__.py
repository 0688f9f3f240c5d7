"""Per-DAG images and per-DAG venvs.

* ``builder.dockerfile``: ``render_dockerfile`` / ``write_dockerfile`` (templates/Dockerfile.tmpl)
* ``builder.image``: ``image_reference``, ``build_image``, ``push_image`` (Docker Engine API)
* ``builder.venv``: ``ensure_venv``, ``venv_python`` (uv, under ``$LEOFLOW_HOME/venvs``)
* ``builder.runtime_image``: the runtime base image (``docker/runtime/Dockerfile``)

Nothing is imported here, so ``import leoflow.builder.venv`` does not load the docker package.
"""
