"""petriflow.verify"""
