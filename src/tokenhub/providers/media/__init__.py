"""The media wire protocols: images and videos, spoken to Volcengine Ark (Seedream images, Seedance
video), Kling (video) and Alibaba DashScope (Wan video). Upstream only: clients reach them through the
gateway's own OpenAI-style media endpoints (``/api/v1/images/generations``, ``/api/v1/videos/generations``).

    base.py       the image and video adapter contracts, and the job and result types they share
    ark.py        Volcengine Ark: Seedream images (synchronous) and Seedance video tasks
    kling.py      Kling video tasks (JWT signed with the channel's access and secret keys)
    dashscope.py  DashScope Wan video tasks
"""
