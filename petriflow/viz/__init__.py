"""petriflow.viz"""
